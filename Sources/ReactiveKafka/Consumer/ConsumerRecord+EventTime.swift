import StreamKit

extension ConsumerRecord {
    /// The record's timestamp as event time, for StreamKit's event-time operators (windows,
    /// joins, patterns, ``Consumer/mergedByTimestamp(_:bufferSize:idleTimeout:)``).
    ///
    /// A record without a timestamp (old message formats) is at `EventTime.min`: behind any
    /// watermark, so windows put it in their side output instead of guessing a time.
    public var eventTime: EventTime {
        timestamp.map { EventTime(milliseconds: $0.milliseconds) } ?? .min
    }
}

extension Consumer {
    /// The records of several sources (each in timestamp order: one partition each, such as
    /// single-partition topics, manual assignments of one partition, or the sub-streams of a
    /// partitioned source) merged into one sequence in timestamp order.
    ///
    /// ```swift
    /// let activity = Consumer.mergedByTimestamp(
    ///     [Consumer.plainSource(settings, subscription: .assignment(TopicPartition("logins", 0))),
    ///      Consumer.plainSource(settings, subscription: .assignment(TopicPartition("payments", 0)))],
    ///     idleTimeout: .seconds(30))
    /// ```
    /// The slowest source holds the merge back, so a consumer lagging on one partition does not
    /// let the others' later records overtake its earlier ones; a source with nothing to read
    /// for `idleTimeout` stops holding it back until it has records again. Back-pressure,
    /// bounds and cancellation: StreamKit's `AsyncEventTimeMergeSequence` (`bufferSize` records per source).
    public static func mergedByTimestamp<Records: AsyncSequence & Sendable, Key, Value>(
        _ sources: [Records], bufferSize: Int = 16, idleTimeout: Duration?
    ) -> AsyncEventTimeMergeSequence<Records, ContinuousClock> where Records.Element == ConsumerRecord<Key, Value> {
        eventTimeMerge(sources, time: \.eventTime, bufferSize: bufferSize, idleTimeout: idleTimeout)
    }
}

extension AsyncSequence {
    /// Per-key event-time windows over Kafka records, by their timestamps; see StreamKit's
    /// `AsyncWindowedSequence`.
    ///
    /// ```swift
    /// let perMinute = records.windowed(.tumbling(.seconds(60)), key: \.key, outOfOrderness: .seconds(5), aggregate: .count)
    /// ```
    public func windowed<RecordKey, RecordValue, Key: Hashable, Value>(
        _ windows: EventTimeWindows,
        key: @escaping @Sendable (Element) -> Key,
        outOfOrderness: Duration = .zero,
        allowedLateness: Duration = .zero,
        earlyUpdates: Bool = false,
        aggregate: WindowAggregation<Element, Value>
    ) -> AsyncWindowedSequence<Self, Key, Value> where Element == ConsumerRecord<RecordKey, RecordValue> {
        windowed(
            windows, key: key, time: \.eventTime, outOfOrderness: outOfOrderness, allowedLateness: allowedLateness,
            earlyUpdates: earlyUpdates, aggregate: aggregate)
    }

    /// The occurrences of `pattern` per key in Kafka records, in timestamp order; see StreamKit's
    /// `AsyncPatternMatchSequence`.
    public func matching<RecordKey, RecordValue, Key: Hashable>(
        _ pattern: EventPattern<Element>, key: @escaping @Sendable (Element) -> Key, outOfOrderness: Duration = .zero
    ) -> AsyncPatternMatchSequence<Self, Key> where Element == ConsumerRecord<RecordKey, RecordValue> {
        matching(pattern, key: key, time: \.eventTime, outOfOrderness: outOfOrderness)
    }
}
