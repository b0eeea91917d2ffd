import CRdKafka
import Logging
import StreamKit

extension Consumer {
    /// Processes records concurrently, beyond the partition count, with per-key order and
    /// exact commits: a Confluent Parallel Consumer for Swift.
    ///
    /// `process` runs on up to ``ParallelSettings/maxConcurrency`` records at once, in the
    /// ``ParallelSettings/ordering`` chosen (``ParallelOrdering/key``: records of one key in
    /// offset order, different keys concurrently). A record is done once `process` returned;
    /// its result is then emitted (see ``ParallelSequence``).
    ///
    /// Commits: every ``ParallelSettings/commitInterval`` (and when partitions move or the
    /// stream ends), each partition's offset is committed as the first record not done, and
    /// the records done above it are written into the commit's metadata. A consumer that
    /// reads the partition next (after a restart or a rebalance) skips those and processes the
    /// rest: at-least-once, no record skipped, few processed twice.
    ///
    /// Back-pressure: a partition with ``ParallelSettings/maxBufferedPerPartition`` records
    /// queued or running is not read further and is paused alone, so a stuck key holds up at
    /// most its partition's buffer; the consumer's byte budget bounds what is fetched.
    ///
    /// Rebalances: a revoked partition's queued records are dropped, its running ones finish
    /// (``ParallelSettings/drainTimeout`` at most) and what completed is committed before the
    /// partition moves (the consumer's rebalance-safe commits, ``ConsumerSettings/rebalanceSafeCommitTimeout``).
    ///
    /// Failures: a record whose `process` throws is retried (``ParallelSettings/retry``, its
    /// key waiting), then `onFailure` decides: fail the stream, or send it to a dead-letter topic.
    ///
    /// Cancellation: cancelling the task that iterates the stream cancels running records
    /// (they are processed again later) and commits what completed; the consumer then leaves.
    public static func parallelSource<Key, Value, Output: Sendable>(
        _ settings: ConsumerSettings<Key, Value>,
        subscription: Subscription,
        parallel: ParallelSettings = ParallelSettings(),
        onFailure: ParallelFailurePolicy<Key, Value> = .failStream,
        logger: Logger = Logger(label: "reactive-kafka.parallel"),
        process: @escaping @Sendable (ConsumerRecord<Key, Value>) async throws -> Output
    ) -> Source<ParallelSequence<Output>, ConsumerControl> {
        parallelSource(
            settings, subscription: subscription, parallel: parallel, onFailure: onFailure, logger: logger,
            makeProcess: { () throws(KafkaError) in (process, {}, nil) })
    }

    /// A parallel source whose run calls the `process` (and afterwards `end`) that `makeProcess`
    /// gives it: made once per iteration, so that what it uses (a producer) belongs to that run.
    /// With `transactions`, completed offsets are committed in them (exactly-once), not by the consumer.
    /// A `makeProcess` that throws fails the stream on its first pull.
    static func parallelSource<Key, Value, Output: Sendable>(
        _ settings: ConsumerSettings<Key, Value>, subscription: Subscription, parallel: ParallelSettings,
        onFailure: ParallelFailurePolicy<Key, Value>, logger: Logger,
        makeProcess:
            @escaping @Sendable () throws(KafkaError) -> (
                process: @Sendable (ConsumerRecord<Key, Value>) async throws -> Output, end: @Sendable () async -> Void,
                transactions: (any ParallelTransactionCommitter)?
            )
    ) -> Source<ParallelSequence<Output>, ConsumerControl> {
        let engineBox = EngineReference()
        let keys = settings.keyDeserializer
        let values = settings.valueDeserializer
        let control = makeControl(
            settings, subscription: subscription, logger: logger,
            kind: SourceKind(committable: true, partitioned: true), engineBox: engineBox)
        let sequence = ParallelSequence<Output> {
            typealias Process = @Sendable (ConsumerRecord<Key, Value>) async throws -> Output
            let made:
                Result<
                    (
                        process: Process, end: @Sendable () async -> Void,
                        transactions: (any ParallelTransactionCommitter)?
                    ), KafkaError
                > = Result {
                    () throws(KafkaError) in
                    try parallel.validate()
                    return try makeProcess()
                }
            // A run that never starts (the first pull throws `made`'s error) needs no process.
            let (process, end, transactions):
                (Process, @Sendable () async -> Void, (any ParallelTransactionCommitter)?) =
                    switch made {
                    case .success(let made): (made.process, made.end, made.transactions)
                    case .failure: ({ @Sendable _ in throw CancellationError() }, { @Sendable in }, nil)
                    }
            let run = ParallelRun(
                settings: parallel, onFailure: onFailure, logger: logger, process: process, ending: end,
                transactions: transactions)
            let records = KafkaPartitionedSequence<CommittableMessage<Key, Value>>(
                control: control,
                makeElement: { index, chunk in try committableMessage(index, chunk, key: keys, value: values) },
                offsetsOnAssign: { [weak run] partitions in
                    // Where the previous owner got to: its commit and the records done above it.
                    guard let run, let engine = engineBox.engine else { return [:] }
                    let positions = try await engine.withConsumer { consumer throws(KafkaError) in
                        try consumer.committedPositions(partitions)
                    }
                    run.remember(positions)
                    return [:]
                })
            return ParallelRunHandle(
                next: {
                    if case .failure(let error) = made { throw error }
                    run.start(records, engineBox: engineBox)
                    return try await run.nextOutput()
                },
                stop: { run.cancel() })
        }
        return Source(sequence, materialized: control)
    }
}

extension RestrictedConsumer {
    /// The group's committed offsets of `partitions` with their metadata (absent: nothing committed).
    func committedPositions(_ partitions: Set<TopicPartition>) throws(KafkaError) -> [TopicPartition: CommitPosition] {
        guard !partitions.isEmpty else { return [:] }
        let list = PartitionList.make(partitions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_committed(handle, list, Int32(timeout.milliseconds))
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError.fromCode(err, "reading committed offsets") }
        var result: [TopicPartition: CommitPosition] = [:]
        for i in 0..<Int(list.pointee.cnt) {
            let element = list.pointee.elems[i]
            guard element.offset >= 0 else { continue }
            let metadata = element.metadata.map {
                String(decoding: UnsafeRawBufferPointer(start: $0, count: element.metadata_size), as: UTF8.self)
            }
            result[TopicPartition(String(cString: element.topic), element.partition)] = CommitPosition(
                nextOffset: element.offset, metadata: metadata)
        }
        return result
    }
}

extension ConsumerRecord {
    /// A hash of the record's key bytes, as fetched (whatever `Key` they were deserialised to):
    /// records with equal keys share it. Two keys sharing a hash only share a queue. No key: 0.
    var orderingKeyHash: Int {
        switch origin {
        case .fetched(let batch, let index):
            let message = batch.messages[index].unsafelyUnwrapped.pointee
            guard let key = message.key else { return 0 }
            var hasher = Hasher()
            hasher.combine(bytes: UnsafeRawBufferPointer(start: key, count: message.key_len))
            return hasher.finalize()
        case .given:
            return String(describing: key).hashValue
        }
    }
}
