import Logging
import Synchronization

/// A transactional Kafka producer for code that is not a stream (Alpakka
/// #1876): each ``transaction(isolation:_:)`` writes its records, and optionally
/// consumed offsets, atomically. Readers with `isolation.level=read_committed`
/// see all of a transaction's records or none.
///
/// ```swift
/// let producer = try TransactionalProducer(settings, transactionalId: "billing-1")
/// try await producer.transaction { t in
///     for invoice in invoices { try await t.send(ProducerRecord(topic: "invoices", key: invoice.id, value: invoice.json)) }
/// }   // committed here; had the closure thrown, nothing would be
/// await producer.close()
/// ```
///
/// The first transaction initialises the producer (`init_transactions`), which
/// fences any earlier instance with the same transactional id and aborts its
/// open transaction. Transactions run one at a time: a second caller waits
/// until the first has committed or aborted. librdkafka's blocking
/// transactional calls run on a dedicated thread, never on Swift's pool.
public final class TransactionalProducer<Key: Sendable, Value: Sendable>: TransactionMachineHost, Sendable {
    /// The settings the producer was created with.
    public let settings: ProducerSettings<Key, Value>
    /// The transactional id (`transactional.id`).
    public let transactionalId: String

    let transactionalProducer: TransactionalProducerEngine
    private let machine = Mutex(TransactionStateMachine())
    private let recorder = TransactionDeliveryRecorder()
    private let receiverId: UInt16
    private let gate = Mutex(Gate())
    private let logger = Logger(label: "reactive-kafka.transactional-producer")

    private struct Gate {
        var busy = false
        var waiters: [UnsafeContinuation<Void, Never>] = []
        var sequence: UInt64 = 0
        var closed = false
    }

    /// Creates the producer. Nothing is sent until the first transaction.
    /// - Parameters:
    ///   - transactionalId: unique per producing instance; a restarted instance must
    ///     use the same id, so that it fences its predecessor.
    ///   - callTimeout: how long `init_transactions`, sending offsets and waiting for
    ///     acknowledgements may block (commit and abort take the remaining
    ///     `transaction.timeout.ms`, as librdkafka advises).
    /// - Throws: ``KafkaError/Kind/invalidConfiguration`` for an empty id or a rejected setting.
    public init(_ settings: ProducerSettings<Key, Value>, transactionalId: String, callTimeout: Duration = .seconds(30))
        throws(KafkaError)
    {
        try settings.validate()
        self.settings = settings
        self.transactionalId = transactionalId
        let producer = try TransactionalProducerEngine(
            properties: settings.properties, transactionalId: transactionalId, callTimeout: callTimeout,
            metrics: settings.metrics)
        self.transactionalProducer = producer
        do {
            self.receiverId = try producer.engine.register(recorder)
        } catch {
            producer.engine.beginClose(timeout: .zero)
            throw error
        }
    }

    deinit { transactionalProducer.engine.beginClose(timeout: settings.closeTimeout) }

    /// Runs `body` inside a new transaction and commits it when `body` returns,
    /// after every record sent in it is acknowledged. If `body` throws, the
    /// transaction is aborted (nothing of it becomes visible) and the error rethrown.
    ///
    /// - Throws: whatever `body` throws; ``KafkaError/Kind/transactionAborted`` when
    ///   Kafka made the commit fail (the transaction was aborted: retry it);
    ///   ``KafkaError/Kind/fenced`` when another instance with the same transactional
    ///   id took over, ``KafkaError/Kind/fatal`` on a fatal error (the producer is then
    ///   unusable: close it); ``KafkaError/Kind/shutDown`` after ``close()``.
    public func transaction<R>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: (KafkaTransaction<Key, Value>) async throws -> R
    ) async throws -> R {
        let sequence = try await acquire()
        defer { release() }
        try await start()
        recorder.begin(sequence)
        let transaction = KafkaTransaction(producer: self, sequence: sequence)
        try await run(withMachine { $0.begin() })
        let result: R
        do {
            result = try await body(transaction)
        } catch {
            transaction.end()
            let outcome = await perform(withMachine { $0.abortRequested() })
            if let failure = outcome.failure {
                logger.error(
                    "aborting the transaction after an error failed",
                    metadata: ["error": "\(error)", "abort": "\(failure)"])
            }
            throw error
        }
        transaction.end()
        let outcome = await perform(withMachine { $0.commitDue() })
        if let failure = outcome.failure { throw failure }
        if outcome.aborted {
            let cause =
                recorder.failure.map { "\($0.message)" } ?? outcome.lastError.map { $0.kafkaError.message }
                ?? "unknown cause"
            throw KafkaError(
                .transactionAborted,
                "the transaction of '\(transactionalId)' could not be committed and was aborted (\(cause)); nothing of it is visible, run it again",
                code: outcome.lastError?.kafkaError.code, partitions: outcome.lastError?.kafkaError.partitions ?? [])
        }
        return result
    }

    /// Waits for the running transaction (if any) to finish; commits and aborts in flight
    /// complete, then the producer flushes and closes. Idempotent.
    public func close() async {
        _ = try? await acquire(closing: true)
        transactionalProducer.engine.deregister(receiverId)
        await transactionalProducer.close(timeout: settings.closeTimeout)
    }

    // MARK: Internals

    /// Produces one record into the open transaction `sequence`.
    func send(_ record: ProducerRecord<Key, Value>, sequence: UInt64) async throws(KafkaError) {
        var record = record
        ProducerTraceHeaders.ofCurrentTask(enabled: settings.propagatesTraceContext)?.add(to: &record)
        let (key, value) = try settings.serialize(record)
        let actions = withMachine { $0.message(index: 0, consumed: nil) }
        guard actions == [.produce(messageIndex: 0)] else {
            throw actions.compactMap { if case .fail(let e) = $0 { e } else { nil } }.first
                ?? KafkaError(.illegalState, "the transaction is not open")
        }
        let engine = transactionalProducer.engine
        let outcome = try await engine.produce(
            topic: record.topic, partition: record.partition, key: key, value: value, headers: record.headers,
            timestamp: record.timestamp, opaque: ProducerOpaque(receiver: receiverId, token: sequence),
            cancellable: false)
        switch outcome {
        case .enqueued:
            return
        case .rejected(let code):
            throw DeliveryReport(
                token: sequence, error: code, partition: record.partition ?? -1, offset: -1, timestamp: nil
            )
            .failure(topic: record.topic)
        case .cancelled:
            throw KafkaError(.shutDown, "the producer closed while the record waited for queue space")
        }
    }

    /// Sends consumed offsets to the open transaction (retrying retriable failures, as librdkafka advises).
    func sendOffsets(_ offsets: [TopicPartition: Int64], group: ConsumerGroupMetadata) async throws(KafkaError) {
        var attempts = 0
        while true {
            guard let error = await transactionalProducer.sendOffsets(offsets, group: group) else { return }
            if error.isRetriable, !error.isFatal, !error.isAbortable, attempts < TransactionStateMachine.maxRetries {
                attempts += 1
                continue
            }
            throw error.kafkaError
        }
    }

    func withMachine<R>(_ body: (inout TransactionStateMachine) -> R) -> R {
        machine.withLock { body(&$0) }
    }

    /// The error that made the producer unusable, reported again to every later transaction.
    private let failure = Mutex<KafkaError?>(nil)

    private func start() async throws {
        let actions = withMachine { $0.phase == .created ? $0.start() : [] }
        try await run(actions)
        if withMachine({ $0.phase }) == .failed {
            throw failure.withLock { $0 }
                ?? KafkaError(
                    .fatal,
                    "the transactional producer '\(transactionalId)' failed earlier and cannot continue; close it and create a new one"
                )
        }
    }

    private func run(_ actions: [TransactionStateMachine.Action]) async throws {
        let outcome = await perform(actions)
        if let failure = outcome.failure { throw failure }
    }

    private func perform(_ actions: [TransactionStateMachine.Action]) async -> TransactionOutcome {
        // Offsets go to the transaction when sent (``KafkaTransaction/sendOffsets``), not at commit.
        let outcome = await performTransactionActions(actions, groupMetadata: { nil }) { _, _ in }
        if let error = outcome.failure { failure.withLock { if $0 == nil { $0 = error } } }
        return outcome
    }

    private func acquire(closing: Bool = false) async throws(KafkaError) -> UInt64 {
        while true {
            let entry = gate.withLock { g -> GateEntry in
                if g.closed { return .closed }
                if g.busy { return .wait }
                g.busy = true
                if closing { g.closed = true }
                g.sequence += 1
                return .go(g.sequence)
            }
            switch entry {
            case .go(let sequence): return sequence
            case .closed:
                throw KafkaError(
                    .shutDown, "the transactional producer '\(transactionalId)' is closed; create a new one")
            case .wait:
                await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                    let resumeNow = gate.withLock { g -> Bool in
                        if !g.busy || g.closed { return true }
                        g.waiters.append(continuation)
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
        }
    }

    private enum GateEntry {
        case go(UInt64)
        case wait, closed
    }

    private func release() {
        let waiters = gate.withLock { g -> [UnsafeContinuation<Void, Never>] in
            g.busy = false
            defer { g.waiters.removeAll() }
            return g.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}
