/// The transactional stage's lifecycle (Alpakka's `TransactionalProducerStage`),
/// as a pure state machine: events in, librdkafka calls out, no I/O.
///
/// One transaction at a time, KIP-447 style (one producer per stream):
/// `init → begin → produce… → (every eosCommitInterval) wait for acks →
/// send the consumed offsets with the group metadata → commit → begin…`.
/// While a transaction commits, upstream demand is suspended. A retriable
/// error repeats the failed call (at most ``maxRetries`` times, as librdkafka
/// advises); an abortable error aborts the transaction and rewinds the source
/// to the last committed offsets, so nothing is skipped and nothing aborted is
/// committed; a fatal error (fenced producer, invalid epoch) fails the stream.
/// A revoke, and shutdown, commit the open transaction before going on.
struct TransactionStateMachine: Sendable {
    /// A librdkafka call (or stream effect) the shell must perform, in order.
    enum Action: Equatable, Sendable {
        case initTransactions
        case beginTransaction
        /// Produce the message at this index (the shell keeps the messages).
        case produce(messageIndex: Int)
        /// Wait until every record of the open transaction is acknowledged.
        case flush
        /// `send_offsets_to_transaction` with the consumer group metadata.
        case sendOffsets([TopicPartition: Int64])
        case commitTransaction
        case abortTransaction
        /// Seek the source back: every partition touched by the aborted transaction to its last committed offset.
        case rewindSource([TopicPartition: Int64])
        /// Stop pulling from upstream until `resumeDemand`.
        case suspendDemand
        case resumeDemand
        /// The transaction committed these offsets (next offsets to read).
        case committed([TopicPartition: Int64])
        /// A pending revoke (or shutdown) may proceed.
        case releaseWaiters
        /// Fail the stream.
        case fail(KafkaError)
    }

    enum Phase: Equatable, Sendable {
        case created
        case initializing
        /// Ready, no transaction open.
        case idle
        /// `begin_transaction` was asked for and has not returned yet.
        case beginning
        /// A transaction is open and records are being produced into it.
        case open
        case flushing
        case sendingOffsets
        case committing
        case aborting
        case failed
        case closed
    }

    /// How often a call that failed with a retriable error (and nothing worse) is repeated
    /// before the failure counts as abortable (inside a transaction) or fatal (init, abort).
    static let maxRetries = 3

    private(set) var phase: Phase = .created
    /// Consumed offsets of the open transaction: the next offset to read, per partition.
    var pending: [TopicPartition: Int64] {
        guard let last = lastPartition else { return pendingStore }
        var all = pendingStore
        all[last] = max(all[last] ?? Int64.min, lastNext)
        return all
    }
    /// `pending`, except for the partition touched last (`lastPartition`, `lastNext`).
    private var pendingStore: [TopicPartition: Int64] = [:]
    /// Offsets of the last committed transaction per partition (where a rewind goes back to).
    private(set) var lastCommitted: [TopicPartition: Int64] = [:]
    /// Offsets as first seen per partition in the open transaction, for partitions
    /// never committed before (a rewind goes to the first offset of the aborted transaction).
    private var firstSeen: [TopicPartition: Int64] = [:]
    private(set) var messagesInTransaction = 0
    /// The consumed offsets (next offsets) of the transaction aborted last: records of those
    /// partitions up to them may still be on their way from before the rewind.
    private(set) var lastAbortedNext: [TopicPartition: Int64] = [:]
    /// Someone (a revoke, shutdown) waits for the open transaction to commit.
    private var waitersPending = false
    private var isClosing = false
    /// The machine closed because the last transaction was aborted (nothing of it committed).
    private var closedByAbort = false
    /// Retries of the call in progress.
    private var attempts = 0
    // The partition `message` touched last and its next offset: consecutive messages mostly
    // share a partition, and updating it without hashing the topic name keeps the
    // per-message cost low. Folded into `pendingStore` when another partition comes.
    private var lastPartition: TopicPartition?
    private var lastNext: Int64 = 0

    /// Whether the shell may hand the machine a message now (no commit, abort or failure under way).
    var acceptsMessages: Bool { phase == .idle || phase == .open }

    mutating func start() -> [Action] {
        guard phase == .created else { return [] }
        phase = .initializing
        return [.initTransactions]
    }

    mutating func initialized(error: TransactionError?) -> [Action] {
        guard phase == .initializing else { return [] }
        if let error {
            if retry(error) { return [.initTransactions] }
            return failed(error.kafkaError)
        }
        attempts = 0
        phase = .idle
        if isClosing { return release() }
        return []
    }

    /// Opens a transaction now (a caller that produces on its own, not through ``message(index:consumed:)``).
    mutating func begin() -> [Action] {
        guard phase == .idle else {
            return [.fail(KafkaError(.illegalState, "a transaction cannot begin while the producer is \(phase)"))]
        }
        phase = .beginning
        return [.beginTransaction]
    }

    /// `begin_transaction` returned.
    mutating func began(error: TransactionError?) -> [Action] {
        guard phase == .beginning else { return [] }
        // begin_transaction only fails on misuse or after a fatal error: nothing to retry or abort.
        if let error { return failed(error.kafkaError) }
        phase = .open
        return []
    }

    /// What ``admit(consumed:)`` decided for a message.
    enum Admission: Equatable, Sendable {
        /// Produce it into the open transaction.
        case produce
        /// Begin a transaction (``began(error:)`` reports it), then produce it.
        case beginThenProduce
        /// Not now: a commit or abort is under way (or the machine failed); the shell waits.
        case notNow
    }

    /// ``message(index:consumed:)`` for the shell's per-message path: the same
    /// decision and bookkeeping, without building an action list, and refusing
    /// (rather than failing on) a message that comes while demand is suspended.
    mutating func admit(consumed: (TopicPartition, Int64)?) -> Admission {
        let admission: Admission
        switch phase {
        case .idle:
            phase = .beginning
            admission = .beginThenProduce
        case .open, .beginning:
            admission = .produce
        default:
            return .notNow
        }
        if let (partition, offset) = consumed { record(partition, next: offset + 1) }
        messagesInTransaction += 1
        return admission
    }

    /// A message arrived from upstream, consumed at `offset` of `partition`
    /// (nil for messages that carry no consumed offset). The first message after
    /// a commit opens the next transaction: `.beginTransaction` comes first, and
    /// the shell produces once it returned (report it with ``began(error:)``).
    mutating func message(index: Int, consumed: (TopicPartition, Int64)?) -> [Action] {
        var actions: [Action] = []
        switch phase {
        case .idle:
            phase = .beginning
            actions.append(.beginTransaction)
        case .open, .beginning:
            break
        default:
            // Demand is suspended outside .idle/.open; a message now is a shell bug.
            return [.fail(KafkaError(.illegalState, "transactional stage received a message while \(phase)"))]
        }
        if let (partition, offset) = consumed { record(partition, next: offset + 1) }
        messagesInTransaction += 1
        actions.append(.produce(messageIndex: index))
        return actions
    }

    /// Adds consumed offsets (the next offsets to read) to the open transaction, as
    /// `send_offsets_to_transaction` will send them; the highest per partition wins.
    mutating func addOffsets(_ offsets: [TopicPartition: Int64]) -> [Action] {
        guard phase == .open || phase == .beginning else {
            return [
                .fail(KafkaError(.illegalState, "offsets can only be added to an open transaction, not while \(phase)"))
            ]
        }
        for (partition, next) in offsets { record(partition, next: next) }
        return []
    }

    private mutating func record(_ partition: TopicPartition, next: Int64) {
        if let last = lastPartition {
            if last == partition {
                if next > lastNext { lastNext = next }
                return
            }
            pendingStore[last] = max(pendingStore[last] ?? Int64.min, lastNext)
        }
        if firstSeen[partition] == nil { firstSeen[partition] = next - 1 }
        lastPartition = partition
        lastNext = max(pendingStore[partition] ?? Int64.min, next)
    }

    /// `eosCommitInterval` elapsed (or a revoke/shutdown needs the transaction committed now).
    mutating func commitDue() -> [Action] {
        guard phase == .open else {
            if phase == .idle, waitersPending || isClosing { return release() }
            return []
        }
        phase = .flushing
        attempts = 0
        return [.suspendDemand, .flush]
    }

    mutating func flushed(error: TransactionError?) -> [Action] {
        guard phase == .flushing else { return [] }
        if let error { return handle(error, retrying: .flush) }
        attempts = 0
        phase = .sendingOffsets
        if pending.isEmpty {
            phase = .committing
            return [.commitTransaction]
        }
        return [.sendOffsets(pending)]
    }

    mutating func offsetsSent(error: TransactionError?) -> [Action] {
        guard phase == .sendingOffsets else { return [] }
        // librdkafka asks for a retry with identical offsets.
        if let error { return handle(error, retrying: .sendOffsets(pending)) }
        attempts = 0
        phase = .committing
        return [.commitTransaction]
    }

    mutating func transactionCommitted(error: TransactionError?) -> [Action] {
        guard phase == .committing else { return [] }
        if let error { return handle(error, retrying: .commitTransaction) }
        let committed = pending
        lastCommitted.merge(committed) { _, new in new }
        resetTransaction()
        phase = .idle
        var actions: [Action] = [.committed(committed)]
        if waitersPending || isClosing { actions += release() }
        if !isClosing { actions.append(.resumeDemand) }
        return actions
    }

    /// Abort the open transaction now, without committing anything (the producing code
    /// failed, or the stream ends with an error). Like an abortable error, it rewinds.
    mutating func abortRequested() -> [Action] {
        switch phase {
        case .open, .beginning:
            phase = .aborting
            attempts = 0
            return [.suspendDemand, .abortTransaction]
        default:
            return []
        }
    }

    mutating func aborted(error: TransactionError?) -> [Action] {
        guard phase == .aborting else { return [] }
        if let error {
            if retry(error) { return [.abortTransaction] }
            return failed(error.kafkaError)
        }
        attempts = 0
        lastAbortedNext = pending
        // Rewind every partition the aborted transaction touched to where the last commit left it.
        var rewind: [TopicPartition: Int64] = [:]
        for partition in Set(pending.keys).union(firstSeen.keys) {
            rewind[partition] = lastCommitted[partition] ?? firstSeen[partition]
        }
        resetTransaction()
        phase = .idle
        var actions: [Action] = [.rewindSource(rewind)]
        closedByAbort = isClosing
        if waitersPending || isClosing { actions += release() }
        if !isClosing { actions.append(.resumeDemand) }
        return actions
    }

    /// Partitions are about to be revoked: commit what is open first.
    mutating func revokeRequested() -> [Action] {
        waitersPending = true
        return phase == .open ? commitDue() : (phase == .idle ? release() : [])
    }

    /// Graceful shutdown: commit the open transaction, then close.
    mutating func closeRequested() -> [Action] {
        isClosing = true
        switch phase {
        case .open: return commitDue()
        case .idle, .created: return release()
        default: return []
        }
    }

    /// The last transaction was aborted as the stream closed, and the shell produces its messages
    /// again (upstream has ended, so no rewind can): the machine takes one more transaction,
    /// which the next ``closeRequested()`` commits. False unless the machine closed by that abort.
    mutating func reopenAfterAbort() -> Bool {
        guard phase == .closed, closedByAbort else { return false }
        closedByAbort = false
        isClosing = false
        phase = .idle
        return true
    }

    private mutating func release() -> [Action] {
        waitersPending = false
        if isClosing { phase = .closed }
        return [.releaseWaiters]
    }

    /// Whether a retriable error (and nothing worse) allows one more attempt of the same call.
    private mutating func retry(_ error: TransactionError) -> Bool {
        guard error.isRetriable, !error.isFatal, !error.isAbortable, attempts < Self.maxRetries else { return false }
        attempts += 1
        return true
    }

    private mutating func handle(_ error: TransactionError, retrying call: Action) -> [Action] {
        if error.isFatal { return failed(error.kafkaError) }
        if retry(error) { return [call] }
        if error.isAbortable || error.isRetriable {
            phase = .aborting
            attempts = 0
            return [.abortTransaction]
        }
        // Neither retriable nor abortable: librdkafka's advice is to treat it as fatal.
        return failed(error.kafkaError)
    }

    private mutating func failed(_ error: KafkaError) -> [Action] {
        phase = .failed
        resetTransaction()
        return [.fail(error)]
    }

    private mutating func resetTransaction() {
        pendingStore.removeAll()
        firstSeen.removeAll()
        messagesInTransaction = 0
        lastPartition = nil
    }
}
