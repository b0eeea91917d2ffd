import CoreMetrics

/// A consumer's swift-metrics instruments (``MessagingMetric``), owned by its engine and
/// used only on the engine's thread: counters move once per fetched batch, gauges once
/// per ``gaugeInterval``, so nothing is recorded per record.
final class ConsumerInstruments {
    /// How often lag, buffer and pause gauges are refreshed.
    static let gaugeInterval: Duration = .seconds(1)

    private let factory: any MetricsFactory
    private let base: [(String, String)]
    private let perPartition: Bool
    private var received: [TopicPartition: (messages: Counter, bytes: Counter)] = [:]
    /// The create time of the last record read per partition (ms since the epoch), for lag in seconds.
    private var lastTimestamp: [TopicPartition: Int64] = [:]
    /// The offset of the first record read per partition since it was assigned: the application's
    /// position while no source has taken a record of it yet.
    private(set) var firstOffsetRead: [TopicPartition: Int64] = [:]
    private var lag: [TopicPartition: (records: Gauge, seconds: Gauge)] = [:]
    private let bufferedBytes: Gauge
    private let bufferedMessages: Gauge
    private let pausedPartitions: Gauge
    private let commitDuration: CoreMetrics.Timer
    private let rebalanceDuration: CoreMetrics.Timer
    private var commits: [String: Counter] = [:]
    private var rebalances: [String: (callbacks: Counter, partitions: Counter)] = [:]
    private var errors: [String: Counter] = [:]
    private var lastGaugeUpdate: ContinuousClock.Instant?

    /// Instruments for a consumer in `group`, or nil when `settings` turn metrics off.
    init?(_ settings: KafkaMetricsSettings, group: String?, clientId: String?) {
        guard settings.enabled else { return nil }
        factory = settings.factory ?? MetricsSystem.factory
        var base = [(MessagingMetric.system, "kafka")]
        if let group { base.append((MessagingMetric.consumerGroup, group)) }
        if let clientId { base.append((MessagingMetric.clientId, clientId)) }
        base += settings.dimensions
        self.base = base
        perPartition = settings.perPartitionLabels
        bufferedBytes = Gauge(label: MessagingMetric.bufferedBytes, dimensions: base, factory: factory)
        bufferedMessages = Gauge(label: MessagingMetric.bufferedMessages, dimensions: base, factory: factory)
        pausedPartitions = Gauge(label: MessagingMetric.pausedPartitions, dimensions: base, factory: factory)
        commitDuration = CoreMetrics.Timer(
            label: MessagingMetric.operationDuration, dimensions: base + [(MessagingMetric.operationName, "commit")],
            factory: factory)
        rebalanceDuration = CoreMetrics.Timer(
            label: MessagingMetric.rebalanceDuration, dimensions: base, factory: factory)
    }

    /// The series key of a partition: itself, or its topic alone without per-partition labels.
    private func seriesKey(_ p: TopicPartition) -> TopicPartition {
        perPartition ? p : TopicPartition(p.topic, -1)
    }

    private func dimensions(_ key: TopicPartition) -> [(String, String)] {
        var dims = base + [(MessagingMetric.destination, key.topic)]
        if key.partition >= 0 { dims.append((MessagingMetric.partition, String(key.partition))) }
        return dims
    }

    /// Records the chunks of one fetched batch: one increment per chunk (a run of one partition).
    func received(_ chunks: [RecordChunk]) {
        for chunk in chunks {
            let key = seriesKey(chunk.topicPartition)
            let counters =
                received[key]
                ?? {
                    let made = (
                        Counter(label: MessagingMetric.consumedMessages, dimensions: dimensions(key), factory: factory),
                        Counter(label: MessagingMetric.consumedBytes, dimensions: dimensions(key), factory: factory)
                    )
                    received[key] = made
                    return made
                }()
            counters.messages.increment(by: chunk.recordCount)
            counters.bytes.increment(by: chunk.byteCount)
            if let timestamp = chunk.lastTimestamp { lastTimestamp[chunk.topicPartition] = timestamp }
            if firstOffsetRead[chunk.topicPartition] == nil {
                firstOffsetRead[chunk.topicPartition] = chunk.batch.messages[chunk.range.lowerBound]!.pointee.offset
            }
        }
    }

    /// Whether the gauges are due (``gaugeInterval``).
    func gaugesDue(now: ContinuousClock.Instant) -> Bool {
        guard let last = lastGaugeUpdate else { return true }
        return now - last >= Self.gaugeInterval
    }

    /// Refreshes the gauges. `lagOf` gives a partition's lag in records (end offset −
    /// position), or nil when librdkafka does not know its end offset yet.
    func updateGauges(
        now: ContinuousClock.Instant, wallClockMilliseconds: Int64, assigned: Set<TopicPartition>,
        lagOf: (TopicPartition) -> Int64?, buffered: (bytes: Int, records: Int), paused: Int
    ) {
        lastGaugeUpdate = now
        bufferedBytes.record(buffered.bytes)
        bufferedMessages.record(buffered.records)
        pausedPartitions.record(paused)
        var records: [TopicPartition: Int64] = [:]
        var seconds: [TopicPartition: Double] = [:]
        for p in assigned {
            guard let partitionLag = lagOf(p) else { continue }
            let key = seriesKey(p)
            records[key, default: 0] += max(0, partitionLag)
            // The age of the last record read: how far behind the consumer is while it has lag.
            let age =
                partitionLag > 0 ? lastTimestamp[p].map { max(0, Double(wallClockMilliseconds - $0) / 1000) } ?? 0 : 0
            seconds[key] = max(seconds[key] ?? 0, age)
        }
        for (key, value) in records {
            let gauges =
                lag[key]
                ?? {
                    let made = (
                        Gauge(label: MessagingMetric.consumerLag, dimensions: dimensions(key), factory: factory),
                        Gauge(label: MessagingMetric.consumerLagSeconds, dimensions: dimensions(key), factory: factory)
                    )
                    lag[key] = made
                    return made
                }()
            gauges.records.record(value)
            gauges.seconds.record(seconds[key] ?? 0)
        }
        // Partitions (or topics) no longer read drop their lag series.
        for key in lag.keys where records[key] == nil {
            if let gone = lag.removeValue(forKey: key) {
                gone.records.destroy()
                gone.seconds.destroy()
            }
        }
        for p in lastTimestamp.keys where !assigned.contains(p) { lastTimestamp[p] = nil }
        for p in firstOffsetRead.keys where !assigned.contains(p) { firstOffsetRead[p] = nil }
    }

    /// An answered commit (or a refusal), and how long it took.
    func commitAnswered(outcome: String, after duration: Duration?) {
        let counter =
            commits[outcome]
            ?? {
                let made = Counter(
                    label: MessagingMetric.commits, dimensions: base + [("messaging.kafka.commit.outcome", outcome)],
                    factory: factory)
                commits[outcome] = made
                return made
            }()
        counter.increment()
        if let duration { commitDuration.recordNanoseconds(duration.nanoseconds) }
    }

    /// A rebalance callback: `kind` is `assigned`, `revoked` or `lost`.
    func rebalance(_ kind: String, partitions: Int, duration: Duration) {
        let counters =
            rebalances[kind]
            ?? {
                let dims = base + [("messaging.kafka.rebalance.kind", kind)]
                let made = (
                    Counter(label: MessagingMetric.rebalances, dimensions: dims, factory: factory),
                    Counter(label: MessagingMetric.rebalancePartitions, dimensions: dims, factory: factory)
                )
                rebalances[kind] = made
                return made
            }()
        counters.callbacks.increment()
        counters.partitions.increment(by: partitions)
        rebalanceDuration.recordNanoseconds(duration.nanoseconds)
    }

    /// A consumer error librdkafka reported, by its code's name.
    func error(_ name: String) {
        let counter =
            errors[name]
            ?? {
                let made = Counter(
                    label: MessagingMetric.consumerErrors, dimensions: base + [(MessagingMetric.errorType, name)],
                    factory: factory)
                errors[name] = made
                return made
            }()
        counter.increment()
    }

    /// The consumer closed: its gauges go (a closed consumer has no lag); counters stay.
    func close() {
        for gauges in lag.values {
            gauges.records.destroy()
            gauges.seconds.destroy()
        }
        lag.removeAll()
        bufferedBytes.destroy()
        bufferedMessages.destroy()
        pausedPartitions.destroy()
    }
}

extension Duration {
    /// Whole nanoseconds, for swift-metrics timers.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
