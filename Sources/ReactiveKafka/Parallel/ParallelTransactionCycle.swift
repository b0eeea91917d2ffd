/// The transactions of an exactly-once parallel source, as a pure state machine (no I/O):
/// a send gate that workers pass to produce a record's outputs into the open transaction,
/// and the commit cycle that closes it.
///
/// A worker enters the gate (``enter(_:)``), produces, waits for the acknowledgements and
/// leaves (``left(_:offset:acknowledged:failure:)``): its input offset then belongs to the open
/// transaction. Records are told apart by their lane (one partition's reading, from its
/// assignment to its revoke): a partition assigned again reads in a new lane, so records of
/// its previous lane still running stay refused. The first to enter initialises the producer and begins the transaction
/// (lazily: a source with nothing to produce opens none). A commit (``commitRequested(revoking:)``)
/// closes the gate, waits until nothing is in flight, takes every partition's position with
/// the acknowledged offsets added (``positionsTaken(_:)``: the shell computes them), sends them
/// with the consumer group's metadata, commits and reopens the gate. So every transaction
/// holds exactly the outputs of the input offsets it commits.
///
/// Errors: a retriable call is repeated (``TransactionStateMachine/maxRetries`` times); an
/// abortable error, or an output that was not acknowledged, aborts the transaction and fails
/// the stream (its next run resumes from the last committed transaction); a fatal error
/// (fenced) fails the stream at once.
struct ParallelTransactionCycle: Sendable {
    /// A call the shell performs, or an effect, in order.
    enum Action: Equatable, Sendable {
        case initTransactions
        case beginTransaction
        /// The gate is quiet: compute the positions (progress with these offsets, acknowledged
        /// in the open transaction, added) and report them with ``positionsTaken(_:)``.
        case takePositions([UInt64: [Int64]])
        case sendOffsets([TopicPartition: CommitPosition])
        case commitTransaction
        case abortTransaction
        /// Wake the workers waiting at the gate: they enter again.
        case openGate
        /// The transaction committed these positions.
        case committed([TopicPartition: CommitPosition])
        /// The commit requested is over (committed, nothing to commit, or failed).
        case commitFinished
        /// Fail the stream.
        case fail(KafkaError)
    }

    /// What ``enter(_:)`` decided for a worker.
    enum Entry: Equatable, Sendable {
        /// Produce into the open transaction, then report ``left(_:offset:acknowledged:failure:)``.
        case send
        /// Wait until the gate opens (``Action/openGate``), then enter again.
        case wait
        /// Perform this call (init or begin), report it, then enter again.
        case prepare(Action)
        /// Do not produce: the record's lane ended (its partition was revoked), or the stream
        /// fails. It is processed again by the partition's next reader.
        case withdraw
    }

    enum Phase: Equatable, Sendable {
        case uninitialized, initializing, idle, beginning, open, sendingOffsets, committing, aborting, failed, closed
    }

    private(set) var phase: Phase = .uninitialized
    /// Records producing (between ``enter(_:)`` answering `.send` and ``left(_:offset:acknowledged:failure:)``).
    private(set) var inFlight = 0
    /// Input offsets whose outputs were acknowledged in the open transaction, per lane.
    private(set) var acknowledged: [UInt64: [Int64]] = [:]
    /// Lanes whose records may not enter (their partitions were revoked).
    private(set) var refused: Set<UInt64> = []
    /// A commit was requested and has not finished: the gate is closed.
    private(set) var commitActive = false
    /// The positions the commit sends, once taken.
    private var pending: [TopicPartition: CommitPosition]?
    /// Why the open transaction must abort (an output not acknowledged, an abortable error).
    private var abortCause: KafkaError?
    private var attempts = 0

    /// Whether a worker may pass the gate now.
    var gateOpen: Bool { !commitActive && phase != .failed && phase != .closed }

    /// A worker whose record (read in `lane`) has outputs wants to produce them.
    mutating func enter(_ lane: UInt64) -> Entry {
        if phase == .failed || phase == .closed || abortCause != nil || refused.contains(lane) { return .withdraw }
        if commitActive { return .wait }
        switch phase {
        case .uninitialized:
            phase = .initializing
            return .prepare(.initTransactions)
        case .idle:
            phase = .beginning
            return .prepare(.beginTransaction)
        case .open:
            inFlight += 1
            return .send
        default:
            return .wait
        }
    }

    /// A worker's outputs were all acknowledged (`acknowledged`), or one failed: the open
    /// transaction then aborts at the next commit, and the stream fails with `failure`.
    mutating func left(_ lane: UInt64, offset: Int64, acknowledged ok: Bool, failure: KafkaError? = nil) -> [Action] {
        inFlight -= 1
        if ok {
            acknowledged[lane, default: []].append(offset)
        } else if abortCause == nil {
            abortCause =
                failure
                ?? KafkaError(.deliveryFailed, "an output of the record at offset \(offset) was not acknowledged")
        }
        return quiet()
    }

    /// `init_transactions` returned.
    mutating func initialized(error: TransactionError?) -> [Action] {
        guard phase == .initializing else { return [] }
        if let error {
            if retry(error) { return [.initTransactions] }
            return failed(error.kafkaError)
        }
        attempts = 0
        phase = .idle
        if let pending, commitActive { return begin(for: pending) }
        return commitActive ? quiet() : [.openGate]
    }

    /// `begin_transaction` returned.
    mutating func began(error: TransactionError?) -> [Action] {
        guard phase == .beginning else { return [] }
        // begin_transaction only fails on misuse or after a fatal error: nothing to retry or abort.
        if let error { return failed(error.kafkaError) }
        phase = .open
        if let pending, commitActive { return send(pending) }
        return commitActive ? quiet() : [.openGate]
    }

    /// Commit the open transaction now, and refuse the records of the lanes `revoking` from now
    /// on (their partitions' next readers process them). One commit at a time.
    mutating func commitRequested(revoking: Set<UInt64> = []) -> [Action] {
        refused.formUnion(revoking)
        guard !commitActive else {
            return [.fail(KafkaError(.illegalState, "a parallel source's transaction commit was requested twice"))]
        }
        if phase == .failed || phase == .closed { return [.commitFinished] }
        commitActive = true
        return quiet()
    }

    /// Refuses the records of `lanes` from now on (their partitions are being revoked).
    mutating func refuse(_ lanes: Set<UInt64>) {
        refused.formUnion(lanes)
    }

    /// The run ended: nothing enters any more. Returns whether a transaction is open (with
    /// nothing of it to commit: abort it, so that read_committed readers are not held up).
    mutating func close() -> Bool {
        let open = phase == .open
        phase = .closed
        return open
    }

    /// The shell computed the positions to commit (every partition whose position moved).
    mutating func positionsTaken(_ positions: [TopicPartition: CommitPosition]) -> [Action] {
        guard commitActive, pending == nil else { return [] }
        if let cause = abortCause {
            guard phase == .open else { return failed(cause) }
            phase = .aborting
            attempts = 0
            return [.abortTransaction]
        }
        switch phase {
        case .open:
            return send(positions)
        case .idle, .uninitialized:
            if positions.isEmpty { return finish() }
            return begin(for: positions)
        default:
            return [.fail(KafkaError(.illegalState, "positions were taken while the transaction was \(phase)"))]
        }
    }

    /// `send_offsets_to_transaction` returned.
    mutating func offsetsSent(error: TransactionError?) -> [Action] {
        guard phase == .sendingOffsets, let pending else { return [] }
        if let error { return handle(error, retrying: .sendOffsets(pending)) }
        attempts = 0
        phase = .committing
        return [.commitTransaction]
    }

    /// `commit_transaction` returned.
    mutating func transactionCommitted(error: TransactionError?) -> [Action] {
        guard phase == .committing else { return [] }
        if let error { return handle(error, retrying: .commitTransaction) }
        let committed = pending ?? [:]
        phase = .idle
        return [.committed(committed)] + finish()
    }

    /// `abort_transaction` returned: the stream fails with what made it abort.
    mutating func aborted(error: TransactionError?) -> [Action] {
        guard phase == .aborting else { return [] }
        if let error, retry(error) { return [.abortTransaction] }
        return failed(
            abortCause ?? error?.kafkaError
                ?? KafkaError(.transactionAborted, "the parallel source's transaction was aborted"))
    }

    // MARK: Steps

    /// The commit goes on once no worker is producing, initialising or beginning.
    private mutating func quiet() -> [Action] {
        guard commitActive, pending == nil, inFlight == 0, phase != .initializing, phase != .beginning else {
            return []
        }
        return [.takePositions(acknowledged)]
    }

    private mutating func begin(for positions: [TopicPartition: CommitPosition]) -> [Action] {
        pending = positions
        if phase == .uninitialized {
            phase = .initializing
            return [.initTransactions]
        }
        phase = .beginning
        return [.beginTransaction]
    }

    private mutating func send(_ positions: [TopicPartition: CommitPosition]) -> [Action] {
        pending = positions
        attempts = 0
        if positions.isEmpty {
            phase = .committing
            return [.commitTransaction]
        }
        phase = .sendingOffsets
        return [.sendOffsets(positions)]
    }

    private mutating func finish() -> [Action] {
        commitActive = false
        pending = nil
        acknowledged.removeAll()
        return [.openGate, .commitFinished]
    }

    private mutating func retry(_ error: TransactionError) -> Bool {
        guard error.isRetriable, !error.isFatal, !error.isAbortable, attempts < TransactionStateMachine.maxRetries
        else { return false }
        attempts += 1
        return true
    }

    private mutating func handle(_ error: TransactionError, retrying call: Action) -> [Action] {
        if error.isFatal { return failed(error.kafkaError) }
        if retry(error) { return [call] }
        if error.isAbortable || error.isRetriable {
            abortCause = error.kafkaError
            phase = .aborting
            attempts = 0
            return [.abortTransaction]
        }
        // Neither retriable nor abortable: librdkafka's advice is to treat it as fatal.
        return failed(error.kafkaError)
    }

    private mutating func failed(_ error: KafkaError) -> [Action] {
        phase = .failed
        let wasCommitting = commitActive
        commitActive = false
        pending = nil
        acknowledged.removeAll()
        return [.fail(error), .openGate] + (wasCommitting ? [.commitFinished] : [])
    }
}
