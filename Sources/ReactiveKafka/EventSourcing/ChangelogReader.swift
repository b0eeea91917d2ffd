import AsyncAlgorithms
import Logging

/// Reads one changelog partition from an offset to its end (read_committed: records of
/// aborted transactions are skipped), for a recovery. Its consumer has no group and commits
/// nothing; it is closed before ``read(_:from:apply:)`` returns, however that ends.
struct ChangelogReader: Sendable {
    let settings: ConsumerSettings<KafkaBytes?, KafkaBytes?>
    let topic: String
    let logger: Logger

    init<K, V>(_ consumerSettings: ConsumerSettings<K, V>, topic: String, logger: Logger) {
        var raw = consumerSettings.rawBytes()
        raw.properties["group.id"] = nil
        raw.properties["auto.offset.reset"] = "earliest"
        raw.properties["enable.partition.eof"] = "true"
        raw.properties["isolation.level"] = "read_committed"
        // It reads to the end and stops: the fetch at the end (and the only one of an empty
        // partition) must not be held by the broker for the default 500 ms, which every
        // partition's recovery would pay (measured: `rkafka bench --scenario event-sourced-recovery`).
        raw.properties["fetch.wait.max.ms"] = "10"
        settings = raw
        self.topic = topic
        self.logger = logger
    }

    private enum Item: Sendable {
        case record(ConsumerRecord<KafkaBytes?, KafkaBytes?>)
        /// The consumer reached the end; every record before it ends before this offset.
        case end(Int64)
    }

    /// Applies every record of `partition` from `from` up to the partition's end as seen when
    /// the consumer reaches it (the last stable offset, past any transaction marker).
    func read(
        _ partition: Int32, from: Int64, apply: (ConsumerRecord<KafkaBytes?, KafkaBytes?>) throws -> Void
    ) async throws {
        let ends = AsyncStream<Item>.makeStream(bufferingPolicy: .unbounded)
        let source = Consumer.makeSource(
            settings, subscription: .assignmentWithOffset([TopicPartition(topic, partition): from]), logger: logger,
            committable: false,
            onPartitionEnd: { tp, _, afterLastRecord in
                guard tp.partition == partition else { return }
                ends.continuation.yield(.end(afterLastRecord ?? from))
            }
        ) { index, chunk, _ in
            try RecordReader.record(index, chunk, key: Deserializer<KafkaBytes?>.optionalBytes, value: .optionalBytes)
        }
        defer { ends.continuation.finish() }
        var failure: (any Error)?
        do {
            var next = from
            var target: Int64?
            for try await item in merge(source.base.map { Item.record($0) }, ends.stream) {
                switch item {
                case .record(let record):
                    try apply(record)
                    next = record.offset + 1
                case .end(let end): target = max(target ?? end, end)
                }
                if let target, next >= target { break }
            }
        } catch {
            failure = error
        }
        source.materialized.stop()
        await source.materialized.shutdown()
        if let failure { throw failure }
    }
}
