import Logging
import Synchronization

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

    /// Applies every record of `partition` from `from` up to the partition's end as seen when
    /// the consumer reaches it (the last stable offset, past any transaction marker).
    ///
    /// The records are read straight from the source (a recovery reads every event: no
    /// hand-over between tasks per record); the end, which the consumer reports on its own
    /// thread, is checked after each record and, when every record before it is applied
    /// already, completes the source so that the waiting read returns.
    func read(
        _ partition: Int32, from: Int64, apply: (ConsumerRecord<KafkaBytes?, KafkaBytes?>) throws -> Void
    ) async throws {
        let watch = EndWatch(next: from)
        let source = Consumer.makeSource(
            settings, subscription: .assignmentWithOffset([TopicPartition(topic, partition): from]), logger: logger,
            committable: false,
            onPartitionEnd: { tp, _, afterLastRecord in
                guard tp.partition == partition else { return }
                watch.ended(at: afterLastRecord ?? from)
            }
        ) { index, chunk, _ in
            try RecordReader.record(index, chunk, key: Deserializer<KafkaBytes?>.optionalBytes, value: .optionalBytes)
        }
        watch.attach(source.materialized)
        var failure: (any Error)?
        do {
            for try await record in source.base {
                try apply(record)
                if watch.applied(through: record.offset) { break }
            }
        } catch {
            failure = error
        }
        source.materialized.stop()
        await source.materialized.shutdown()
        if let failure { throw failure }
        try Task.checkCancellation()
        guard watch.reachedEnd else {
            throw EventSourcedError(
                .changelog,
                "reading \(topic)-\(partition) for a recovery: the consumer stopped before the partition's end")
        }
    }
}

/// Where a changelog read is: the next offset to apply and the end the consumer reported.
/// The end arrives on the consumer's thread, the records on the reading task.
final class EndWatch: Sendable {
    private struct State {
        var next: Int64
        var end: Int64?
        var control: ConsumerControl?
        var reached: Bool { end.map { next >= $0 } ?? false }
    }

    private let state: Mutex<State>

    init(next: Int64) { state = Mutex(State(next: next)) }

    /// The source to complete once the end is reached with every record before it applied.
    func attach(_ control: ConsumerControl) {
        let reached = state.withLock { s in
            s.control = control
            return s.reached
        }
        if reached { control.stop() }
    }

    /// The consumer reached the end: every record before it ends before `end`.
    func ended(at end: Int64) {
        let control = state.withLock { s -> ConsumerControl? in
            s.end = max(s.end ?? end, end)
            return s.reached ? s.control : nil
        }
        control?.stop()
    }

    /// The record at `offset` is applied; true once the end is reached.
    func applied(through offset: Int64) -> Bool {
        state.withLock { s in
            s.next = offset + 1
            return s.reached
        }
    }

    var reachedEnd: Bool { state.withLock { $0.reached } }
}
