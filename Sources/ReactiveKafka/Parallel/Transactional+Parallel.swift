import Logging
import StreamKit

extension Transactional {
    /// An exactly-once parallel source for consume → process → produce: records are processed
    /// concurrently as by ``Consumer/parallelSource(_:subscription:parallel:producerSettings:onFailure:logger:process:)``,
    /// and the outputs `process` returns are written in Kafka transactions together with the
    /// offsets (and completed-offset metadata) of the input records they came from.
    ///
    /// Exactly-once: every `eosCommitInterval` (and when partitions are revoked, and at the end)
    /// the stage stops letting outputs out, waits until every output sent is acknowledged, and
    /// commits one transaction holding those outputs and, per partition, the first record not
    /// done with the records done above it (``ParallelSettings/maxMetadataBytes``). A consumer
    /// reading the outputs with `isolation.level=read_committed` sees each input record's outputs
    /// once, and the next reader of an input partition (after a restart or a rebalance) processes
    /// exactly the records whose outputs were not committed. The handler itself may run more
    /// than once for a record (its outputs then are written once): keep its other effects idempotent.
    /// It holds while the records done above a gap fit in `maxMetadataBytes`; those left out are
    /// processed again and their outputs written twice. Dead letters are written outside the
    /// transactions (at least once).
    ///
    /// - The consumer reads with `isolation.level=read_committed` (forced) and never commits
    ///   itself; ``ParallelSettings/commitInterval`` is not used.
    /// - One transactional producer per run (`transactionalId`: unique per running instance, the
    ///   same after a restart, so that it fences its predecessor); it is initialised when the
    ///   first output is sent.
    /// - Order and back-pressure as in the at-least-once variant; in addition, while a
    ///   transaction commits, records with outputs wait before sending them.
    /// - Results: a ``ProducerResult`` per record once its outputs were acknowledged (their
    ///   transaction may still abort; the stream then fails).
    /// - Rebalances: a revoked partition's records produce nothing more from the moment its
    ///   revoke begins (they are the next owner's); those sending finish, and a transaction with
    ///   the partition's offsets commits before the partition moves (within
    ///   ``ConsumerSettings/rebalanceSafeCommitTimeout``).
    /// - Failures: an output not acknowledged, or an abortable error, aborts the transaction and
    ///   fails the stream; a fenced producer (``KafkaError/Kind/fenced``) or another fatal error
    ///   fails it at once. Restarted, the stream resumes from the last committed transaction.
    /// - Cancellation: running handlers are cancelled, the open transaction commits what was
    ///   acknowledged, and the producer is closed.
    public static func parallelSource<Key, Value, OutKey, OutValue, PassThrough>(
        _ settings: ConsumerSettings<Key, Value>,
        subscription: Subscription,
        parallel: ParallelSettings = ParallelSettings(),
        producerSettings: ProducerSettings<OutKey, OutValue>,
        transactionalId: String,
        eosCommitInterval: Duration? = nil,
        onFailure: ParallelFailurePolicy<Key, Value> = .failStream,
        logger: Logger = Logger(label: "reactive-kafka.parallel"),
        process:
            @escaping @Sendable (ConsumerRecord<Key, Value>) async throws -> ProducerMessage<
                OutKey, OutValue, PassThrough
            >
    ) -> Source<ParallelSequence<ProducerResult<OutKey, OutValue, PassThrough>>, ConsumerControl> {
        var parallel = parallel
        let interval = eosCommitInterval ?? producerSettings.eosCommitInterval
        parallel.commitInterval = interval
        return Consumer.parallelSource(
            settings.withProperty("isolation.level", "read_committed"), subscription: subscription,
            parallel: parallel, onFailure: onFailure, logger: logger,
            makeProcess: { () throws(KafkaError) in
                guard interval > .zero else {
                    throw KafkaError(.invalidConfiguration, "eosCommitInterval must be positive, got \(interval)")
                }
                let transactions = try ParallelTransactions(producerSettings, transactionalId: transactionalId)
                return (
                    { record in
                        try await transactions.produce(try await process(record), offset: record.offset)
                    },
                    { await transactions.close() }, transactions
                )
            })
    }
}
