import Logging
import Synchronization

/// Reads changelog partitions from an offset to their ends (read_committed: records of
/// aborted transactions are skipped), for a recovery. Its consumer has no group and commits
/// nothing; it is closed before ``read(_:apply:)`` returns, however that ends.
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

    /// Applies every record of each partition of `partitions` from its offset up to the
    /// partition's end as seen when the consumer reaches it (the last stable offset, past any
    /// transaction marker); the partitions are read at once, by one consumer.
    ///
    /// The records are read straight from the source (a recovery reads every event: no
    /// hand-over between tasks per record); the ends, which the consumer reports on its own
    /// thread, are checked after each record and, when every record before every end is
    /// applied, complete the source so that the waiting read returns.
    func read(
        _ partitions: [Int32: Int64], apply: (ConsumerRecord<KafkaBytes?, KafkaBytes?>) throws -> Void
    ) async throws {
        guard !partitions.isEmpty else { return }
        let watch = EndWatch(from: partitions)
        var assignment: [TopicPartition: Int64] = [:]
        for (partition, from) in partitions { assignment[TopicPartition(topic, partition)] = from }
        let source = Consumer.makeSource(
            settings, subscription: .assignmentWithOffset(assignment), logger: logger, committable: false,
            onPartitionEnd: { tp, _, afterLastRecord in watch.ended(tp.partition, at: afterLastRecord) }
        ) { index, chunk, _ in
            try RecordReader.record(index, chunk, key: Deserializer<KafkaBytes?>.optionalBytes, value: .optionalBytes)
        }
        watch.attach(source.materialized)
        var failure: (any Error)?
        do {
            for try await record in source.base {
                try apply(record)
                if watch.applied(record.partition, through: record.offset) { break }
            }
        } catch {
            failure = error
        }
        source.materialized.stop()
        await source.materialized.shutdown()
        // The engine keeps the end callback (so the watch) for its whole life: the watch must
        // let go of the control, or the three keep each other (seen as a leak under ASan).
        watch.detach()
        if let failure { throw failure }
        try Task.checkCancellation()
        guard watch.reachedEnd else {
            throw EventSourcedError(
                .changelog,
                "reading \(topic) partitions \(partitions.keys.sorted()) for a recovery: the consumer stopped before their ends"
            )
        }
    }
}

/// Where a changelog read is, per partition: the next offset to apply and the end the consumer
/// reported. The ends arrive on the consumer's thread, the records on the reading task.
final class EndWatch: Sendable {
    private struct State {
        var next: [Int32: Int64]
        var end: [Int32: Int64] = [:]
        /// Partitions whose end is not reached yet (end unknown, or records before it unapplied).
        var open: Int
        var control: ConsumerControl?

        func reached(_ partition: Int32) -> Bool {
            guard let end = end[partition], let next = next[partition] else { return false }
            return next >= end
        }

        /// Recounts the open partitions after `partition`'s next offset or end moved (a later
        /// end can reopen a partition reached before).
        mutating func update(_ partition: Int32, wasReached: Bool) {
            let now = reached(partition)
            if now != wasReached { open += now ? -1 : 1 }
        }
    }

    private let state: Mutex<State>

    init(from partitions: [Int32: Int64]) { state = Mutex(State(next: partitions, open: partitions.count)) }

    /// The source to complete once every end is reached with every record before it applied.
    func attach(_ control: ConsumerControl) {
        let reached = state.withLock { s in
            s.control = control
            return s.open == 0
        }
        if reached { control.stop() }
    }

    /// The read is over: drops the control (breaking the cycle through the engine's end callback).
    func detach() { state.withLock { $0.control = nil } }

    /// The consumer reached `partition`'s end: every record of it ends before `end` (nil: no
    /// record was read from it, so its end is where the read started).
    func ended(_ partition: Int32, at end: Int64?) {
        let control = state.withLock { s -> ConsumerControl? in
            guard let next = s.next[partition] else { return nil }
            let was = s.reached(partition)
            let at = end ?? next
            s.end[partition] = max(s.end[partition] ?? at, at)
            s.update(partition, wasReached: was)
            return s.open == 0 ? s.control : nil
        }
        control?.stop()
    }

    /// The record of `partition` at `offset` is applied; true once every end is reached.
    func applied(_ partition: Int32, through offset: Int64) -> Bool {
        state.withLock { s in
            let was = s.reached(partition)
            s.next[partition] = offset + 1
            s.update(partition, wasReached: was)
            return s.open == 0
        }
    }

    var reachedEnd: Bool { state.withLock { $0.open == 0 } }
}
