import CRdKafka
import Synchronization

/// What an exactly-once ``ParallelRun`` commits through instead of the consumer: the
/// transactions of its output producer.
protocol ParallelTransactionCommitter: AnyObject, Sendable {
    /// Where a failure of the transactions goes (the run's `fail`).
    func attach(fail: @escaping @Sendable (any Error) -> Void)
    /// Refuses the records read in `lanes` at the gate from now on (their partitions are being revoked).
    func withdraw(_ lanes: Set<UInt64>)
    /// Commits the open transaction with the positions `positions` computes once nothing is in
    /// flight (given the offsets acknowledged in it, per lane). Returns once committed, or failed.
    func commit(
        engine: ConsumerEngine?,
        positions: @escaping @Sendable ([UInt64: [Int64]]) -> [TopicPartition: CommitPosition]
    ) async
}

/// The thin async shell of a ``ParallelTransactionCycle``: one transactional producer per run,
/// its gate (workers park while a commit is under way) and its commit cycle. The cycle's
/// decisions are taken behind one lock, never held across a librdkafka call; its calls run
/// on the producer's own thread (``TransactionalProducerEngine``).
final class ParallelTransactions<Key: Sendable, Value: Sendable>: ParallelTransactionCommitter, Sendable {
    /// What a commit waiting for the gate learns: the acknowledged offsets, or that it is over.
    private enum Quiet {
        case acknowledged([UInt64: [Int64]])
        case finished
    }

    private struct State {
        var cycle = ParallelTransactionCycle()
        var gateWaiters: [UnsafeContinuation<Void, Never>] = []
        /// The commit waits for the gate to be quiet (between its request and its positions).
        var awaitingQuiet = false
        var commitWaiter: UnsafeContinuation<Quiet, Never>?
        var quiet: Quiet?
        /// Commits run one at a time: those queued behind the running one.
        var committing = false
        var commitQueue: [UnsafeContinuation<Void, Never>] = []
        var fail: (@Sendable (any Error) -> Void)?
    }

    let transactional: TransactionalProducerEngine
    private let producer: KafkaProducer<Key, Value>
    private let state = Mutex(State())

    /// Creates the transactional producer (`transactionalId`); nothing is sent until the first output.
    init(_ settings: ProducerSettings<Key, Value>, transactionalId: String, callTimeout: Duration = .seconds(30))
        throws(KafkaError)
    {
        try settings.validate()
        transactional = try TransactionalProducerEngine(
            properties: settings.properties, transactionalId: transactionalId, callTimeout: callTimeout,
            metrics: settings.metrics)
        producer = KafkaProducer(settings, engine: transactional.engine)
    }

    func attach(fail: @escaping @Sendable (any Error) -> Void) {
        state.withLock { $0.fail = fail }
    }

    // MARK: The gate

    /// Produces `message` into the open transaction as the output of the record at `offset`
    /// (read in the worker's ``ParallelLane/current``), waiting while the gate is closed; returns
    /// once every record was acknowledged.
    /// - Throws: ``ParallelRecordWithdrawn`` when the record must not produce (its partition is
    ///   being revoked, the stream fails, or an output was refused: the stream then fails with it).
    func produce<PassThrough>(_ message: ProducerMessage<Key, Value, PassThrough>, offset: Int64) async throws
        -> ProducerResult<Key, Value, PassThrough>
    {
        guard let lane = ParallelLane.current else {
            throw KafkaError(.illegalState, "an exactly-once parallel source produced outside of its workers")
        }
        while true {
            // A cancelled worker's record is processed again later: it must not produce now.
            if Task.isCancelled { throw ParallelRecordWithdrawn() }
            switch state.withLock({ $0.cycle.enter(lane) }) {
            case .send:
                let result: ProducerResult<Key, Value, PassThrough>
                do throws(KafkaError) {
                    result = try await producer.produce(message)
                } catch {
                    let failure = fencing(error)
                    perform(
                        state.withLock { $0.cycle.left(lane, offset: offset, acknowledged: false, failure: failure) }
                    )
                    reportFailure(failure)
                    throw ParallelRecordWithdrawn()
                }
                perform(state.withLock { $0.cycle.left(lane, offset: offset, acknowledged: true) })
                return result
            case .wait:
                await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
                    let now = state.withLock { s -> Bool in
                        if s.cycle.gateOpen && s.cycle.phase != .initializing && s.cycle.phase != .beginning {
                            return true
                        }
                        s.gateWaiters.append(c)
                        return false
                    }
                    if now { c.resume() }
                }
            case .prepare(let call):
                await run([call])
            case .withdraw:
                throw ParallelRecordWithdrawn()
            }
        }
    }

    func withdraw(_ lanes: Set<UInt64>) {
        // Woken, the waiting workers enter again: those of `lanes` are refused.
        let waiters = state.withLock { s in
            s.cycle.refuse(lanes)
            defer { s.gateWaiters.removeAll() }
            return s.gateWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    // MARK: Commits

    func commit(
        engine: ConsumerEngine?,
        positions: @escaping @Sendable ([UInt64: [Int64]]) -> [TopicPartition: CommitPosition]
    ) async {
        await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                guard s.committing else {
                    s.committing = true
                    return true
                }
                s.commitQueue.append(c)
                return false
            }
            if now { c.resume() }
        }
        defer {
            let next = state.withLock { s in
                if s.commitQueue.isEmpty { s.committing = false }
                return s.commitQueue.isEmpty ? nil : s.commitQueue.removeFirst()
            }
            next?.resume()
        }
        perform(
            state.withLock { s in
                s.awaitingQuiet = true
                return s.cycle.commitRequested()
            })
        let quiet = await withUnsafeContinuation { (c: UnsafeContinuation<Quiet, Never>) in
            let now = state.withLock { s -> Quiet? in
                if let quiet = s.quiet {
                    s.quiet = nil
                    return quiet
                }
                s.commitWaiter = c
                return nil
            }
            if let now { c.resume(returning: now) }
        }
        guard case .acknowledged(let acknowledged) = quiet else { return }
        // Nothing enters the gate until the cycle reopens it: the positions are final.
        let taken = positions(acknowledged)
        await run(state.withLock { $0.cycle.positionsTaken(taken) }, engine: engine)
    }

    /// Closes the producer (the run ended: no transaction is open any more).
    func close() async {
        if state.withLock({ $0.cycle.close() }) { _ = await transactional.abortTransaction() }
        await transactional.close(timeout: producer.settings.closeTimeout)
    }

    // MARK: Performing the cycle's actions

    /// Performs `actions` and what they lead to: the transactional calls, in order.
    private func run(_ actions: [ParallelTransactionCycle.Action], engine: ConsumerEngine? = nil) async {
        var queue = actions[...]
        while let action = queue.popFirst() {
            let next: [ParallelTransactionCycle.Action]
            switch action {
            case .initTransactions:
                let error = await transactional.initTransactions()
                next = state.withLock { $0.cycle.initialized(error: error) }
            case .beginTransaction:
                let error = await transactional.beginTransaction()
                next = state.withLock { $0.cycle.began(error: error) }
            case .sendOffsets(let positions):
                let error: TransactionError?
                do throws(KafkaError) {
                    error = await transactional.sendOffsets(
                        positions: positions, group: try await groupMetadata(engine))
                } catch let missing {
                    error = TransactionError(kafkaError: missing, isFatal: false, isAbortable: true, isRetriable: false)
                }
                next = state.withLock { $0.cycle.offsetsSent(error: error) }
            case .commitTransaction:
                let error = await transactional.commitTransaction()
                next = state.withLock { $0.cycle.transactionCommitted(error: error) }
            case .abortTransaction:
                let error = await transactional.abortTransaction()
                next = state.withLock { $0.cycle.aborted(error: error) }
            case .committed(let positions):
                // A revoke waiting for these partitions' commits may go on.
                engine?.transactionCommitted(positions.mapValues(\.nextOffset))
                next = []
            default:
                perform([action])
                next = []
            }
            queue = next[...] + queue
        }
    }

    /// The effects that need no call: waking the gate or the commit, failing the run.
    private func perform(_ actions: [ParallelTransactionCycle.Action]) {
        for action in actions {
            switch action {
            case .openGate:
                let waiters = state.withLock { s in
                    defer { s.gateWaiters.removeAll() }
                    return s.gateWaiters
                }
                for waiter in waiters { waiter.resume() }
            case .takePositions(let acknowledged):
                settleQuiet(.acknowledged(acknowledged))
            case .commitFinished:
                settleQuiet(.finished)
            case .fail(let error):
                reportFailure(error)
            case .committed:
                break
            case .initTransactions, .beginTransaction, .sendOffsets, .commitTransaction, .abortTransaction:
                // Calls are performed by `run`, by whoever got them.
                break
            }
        }
    }

    /// `error` of a produce, as ``KafkaError/Kind/fenced`` when another instance with the same
    /// transactional id took over (librdkafka reports it to produce calls as a fatal error).
    private func fencing(_ error: KafkaError) -> KafkaError {
        guard let code = error.code, TransactionError.isFencing(rd_kafka_resp_err_t(code)) else { return error }
        return TransactionError.fenced(
            transactionalId: transactional.transactionalId, detail: "producing failed: \(error.message)", code: code)
    }

    /// Tells the commit waiting for the gate (if one is) what it waited for.
    private func settleQuiet(_ quiet: Quiet) {
        let waiter = state.withLock { s -> UnsafeContinuation<Quiet, Never>? in
            guard s.awaitingQuiet else { return nil }
            s.awaitingQuiet = false
            guard let waiter = s.commitWaiter else {
                s.quiet = quiet
                return nil
            }
            s.commitWaiter = nil
            return waiter
        }
        waiter?.resume(returning: quiet)
    }

    private func reportFailure(_ error: KafkaError) {
        state.withLock { $0.fail }?(error)
    }

    private func groupMetadata(_ engine: ConsumerEngine?) async throws(KafkaError) -> ConsumerGroupMetadata {
        guard let engine else {
            throw KafkaError(.illegalState, "the consumer is gone: its offsets cannot be sent to the transaction")
        }
        if let metadata = engine.groupRequests.groupMetadata { return metadata }
        return try await engine.withConsumer { consumer throws(KafkaError) in try consumer.groupMetadata() }
    }
}

/// The lane (one partition's reading) of the record a parallel source's worker processes: the
/// gate of an exactly-once source refuses records of lanes that ended.
enum ParallelLane {
    @TaskLocal static var current: UInt64?
}

/// Thrown by an exactly-once parallel source's gate: the record is not produced (its
/// partition is being revoked, or the stream fails) and is processed again by its next reader.
struct ParallelRecordWithdrawn: Error {}

extension ConsumerEngine {
    /// Offsets committed by a transaction (not by this consumer): a graceful revoke waiting for
    /// them may go on, as after the consumer's own commits.
    func transactionCommitted(_ offsets: [TopicPartition: Int64]) {
        guard !offsets.isEmpty else { return }
        let revoking = state.withLock { s in
            s.emitted.committed(offsets)
            return s.emitted.isRevoking
        }
        if revoking { wakeup.signal() }
    }
}
