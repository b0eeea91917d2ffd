import CRdKafka
import Synchronization

/// A librdkafka producer configured with a `transactional.id`, and the
/// dedicated thread its blocking transactional calls run on.
///
/// Records are produced through ``engine`` (the ordinary ``ProducerEngine``:
/// non-blocking produce calls, delivery reports on its poll thread); the
/// transaction's own calls go through the methods here, one at a time on the
/// ``BlockingCallThread``, each returning the classified error or nil. The
/// calls follow librdkafka's advice: commit and abort wait for the remaining
/// transaction time (`-1`), init and offset sends for `callTimeout`.
final class TransactionalProducerEngine: Sendable {
    let engine: ProducerEngine
    let transactionalId: String
    private let thread: BlockingCallThread
    private let callTimeoutMs: Int32
    // Set on the thread by `close`, so no call queued after it touches the destroyed handle.
    private let closed = Atomic<Bool>(false)
    private let instruments: TransactionInstruments?
    /// ``ProducerEngine/acknowledgedRecords`` when the current transaction began.
    private let acknowledgedAtBegin = Atomic<Int>(0)

    /// Creates the producer with `transactional.id` = `transactionalId` (it must not be
    /// set otherwise in `properties`, unless to the same value).
    /// - Throws: ``KafkaError/Kind/invalidConfiguration`` for an empty id, a conflicting
    ///   property, or a property librdkafka rejects.
    init(
        properties: [String: String], transactionalId: String, callTimeout: Duration,
        metrics: KafkaMetricsSettings = KafkaMetricsSettings()
    ) throws(KafkaError) {
        guard !transactionalId.isEmpty else {
            throw KafkaError(
                .invalidConfiguration,
                "a transactional producer needs a non-empty transactional id, unique per application instance")
        }
        if let configured = properties["transactional.id"], configured != transactionalId {
            throw KafkaError(
                .invalidConfiguration,
                "the producer settings set transactional.id=\(configured) but the stage was given transactionalId \(transactionalId): remove the property or pass the same id"
            )
        }
        guard callTimeout > .zero else {
            throw KafkaError(
                .invalidConfiguration, "the transactional call timeout must be positive, got \(callTimeout)")
        }
        var properties = properties
        properties["transactional.id"] = transactionalId
        self.engine = try ProducerEngine(
            properties: properties, metrics: metrics, label: "reactive-kafka.transactional-producer")
        self.instruments = TransactionInstruments(
            metrics, transactionalId: transactionalId, clientId: properties["client.id"])
        self.transactionalId = transactionalId
        self.thread = BlockingCallThread(name: "rkafka-txn")
        self.callTimeoutMs = Int32(
            clamping: callTimeout.components.seconds * 1000 + callTimeout.components.attoseconds / 1_000_000_000_000_000
        )
    }

    // The thread ends with the engine, even when nobody closed it.
    deinit { thread.stop() }

    /// `rd_kafka_init_transactions`: fences earlier instances with the same id and aborts their open transaction.
    func initTransactions() async -> TransactionError? {
        await call("init_transactions") { rk, timeout in rd_kafka_init_transactions(rk, timeout) }
    }

    /// `rd_kafka_begin_transaction`.
    func beginTransaction() async -> TransactionError? {
        acknowledgedAtBegin.store(engine.acknowledgedRecords.load(ordering: .relaxed), ordering: .relaxed)
        return await call("begin_transaction") { rk, _ in rd_kafka_begin_transaction(rk) }
    }

    /// Waits until every record produced so far is acknowledged (or failed) and its
    /// delivery report was handed to its receiver (`rd_kafka_flush`: with delivery-report
    /// events it waits for the engine's poll thread to serve them).
    func flush() async -> TransactionError? {
        let (engine, timeout, id) = (self.engine, callTimeoutMs, transactionalId)
        return await thread.run { [self] in
            if closed.load(ordering: .acquiring) { return Self.closedError(id) }
            let err = rd_kafka_flush(engine.handle, timeout)
            guard err != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
            let fatal = rd_kafka_fatal_error(engine.handle, nil, 0) != RD_KAFKA_RESP_ERR_NO_ERROR
            return TransactionError.classify(
                code: err,
                reason: String(cString: rd_kafka_err2str(err))
                    + " (\(rd_kafka_outq_len(engine.handle)) records not acknowledged)",
                call: "waiting for the transaction's acknowledgements", transactionalId: id,
                isFatal: fatal, isAbortable: false, isRetriable: err == RD_KAFKA_RESP_ERR__TIMED_OUT && !fatal)
        }
    }

    /// `rd_kafka_send_offsets_to_transaction`: the next offsets to read, per partition, of `group`.
    /// A failure names the partitions whose offsets were not added (librdkafka's error does not).
    func sendOffsets(_ offsets: [TopicPartition: Int64], group: ConsumerGroupMetadata) async -> TransactionError? {
        await sendOffsets(positions: offsets.mapValues { CommitPosition(nextOffset: $0, metadata: nil) }, group: group)
    }

    /// ``sendOffsets(_:group:)`` with each partition's commit metadata (a parallel source's
    /// completed offsets above the committed one), committed with the transaction.
    func sendOffsets(positions: [TopicPartition: CommitPosition], group: ConsumerGroupMetadata) async
        -> TransactionError?
    {
        let error = await call("send_offsets_to_transaction") { rk, timeout in
            let list = PartitionList.make(positions)
            defer { rd_kafka_topic_partition_list_destroy(list) }
            return withExtendedLifetime(group) {
                rd_kafka_send_offsets_to_transaction(rk, list, group.pointer, timeout)
            }
        }
        return error.map { $0.refusing(Set(positions.keys)) }
    }

    /// `rd_kafka_commit_transaction` (flushes first), with the remaining transaction time.
    func commitTransaction() async -> TransactionError? {
        let started = ContinuousClock.now
        let error = await call("commit_transaction") { rk, _ in rd_kafka_commit_transaction(rk, -1) }
        if error == nil, let instruments {
            // The commit flushed: every record of the transaction is acknowledged by now.
            let records =
                engine.acknowledgedRecords.load(ordering: .relaxed) - acknowledgedAtBegin.load(ordering: .relaxed)
            instruments.committed(after: .now - started, recordCount: records)
        }
        return error
    }

    /// `rd_kafka_abort_transaction` (purges records not yet delivered), with the remaining transaction time.
    func abortTransaction() async -> TransactionError? {
        let error = await call("abort_transaction") { rk, _ in rd_kafka_abort_transaction(rk, -1) }
        if error == nil { instruments?.aborted() }
        return error
    }

    /// Closes the producer (records still queued get `timeout` to be delivered) and ends the thread.
    /// Call only once no transactional call is running.
    func close(timeout: Duration) async {
        await thread.run { [self] in closed.store(true, ordering: .releasing) }
        thread.stop()
        await engine.close(timeout: timeout)
    }

    private func call(_ name: String, _ body: @escaping @Sendable (OpaquePointer, Int32) -> OpaquePointer?) async
        -> TransactionError?
    {
        let (engine, timeout, id) = (self.engine, callTimeoutMs, transactionalId)
        return await thread.run { [self] in
            if closed.load(ordering: .acquiring) { return Self.closedError(id) }
            guard let error = body(engine.handle, timeout) else { return nil }
            return TransactionError.consuming(error, call: name, transactionalId: id, rk: engine.handle)
        }
    }

    private static func closedError(_ id: String) -> TransactionError {
        TransactionError(
            kafkaError: KafkaError(.shutDown, "the transactional producer '\(id)' is closed; create a new one"),
            isFatal: true, isAbortable: false, isRetriable: false)
    }
}
