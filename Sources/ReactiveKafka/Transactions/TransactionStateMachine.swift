/// The transactional stage's lifecycle (Alpakka's `TransactionalProducerStage`),
/// as a pure state machine: events in, librdkafka calls out, no I/O.
///
/// One transaction at a time, KIP-447 style (one producer per stream):
/// `init → begin → produce… → (every eosCommitInterval) wait for acks →
/// send the consumed offsets with the group metadata → commit → begin…`.
/// While a transaction commits, upstream demand is suspended. An abortable
/// error aborts the transaction and rewinds the source to the last committed
/// offsets, so nothing is skipped and nothing aborted is committed; a fatal
/// error (fenced producer, invalid epoch) fails the stream. A revoke, and
/// shutdown, commit the open transaction before going on.
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
        /// A transaction is open and records are being produced into it.
        case open
        case flushing
        case sendingOffsets
        case committing
        case aborting
        case failed
        case closed
    }

    private(set) var phase: Phase = .created
    /// Consumed offsets of the open transaction: the next offset to read, per partition.
    private(set) var pending: [TopicPartition: Int64] = [:]
    /// Offsets of the last committed transaction per partition (where a rewind goes back to).
    private(set) var lastCommitted: [TopicPartition: Int64] = [:]
    /// Offsets as first seen per partition in the open transaction, for partitions
    /// never committed before (a rewind goes to the first offset of the aborted transaction).
    private var firstSeen: [TopicPartition: Int64] = [:]
    private var messagesInTransaction = 0
    /// Someone (a revoke, shutdown) waits for the open transaction to commit.
    private var waitersPending = false
    private var isClosing = false

    mutating func start() -> [Action] {
        guard phase == .created else { return [] }
        phase = .initializing
        return [.initTransactions]
    }

    mutating func initialized(error: TransactionError?) -> [Action] {
        guard phase == .initializing else { return [] }
        if let error { return failed(error.kafkaError) }
        phase = .idle
        return []
    }

    /// A message arrived from upstream, consumed at `offset` of `partition`
    /// (nil for messages that carry no consumed offset).
    mutating func message(index: Int, consumed: (TopicPartition, Int64)?) -> [Action] {
        var actions: [Action] = []
        switch phase {
        case .idle:
            phase = .open
            actions.append(.beginTransaction)
        case .open:
            break
        default:
            // Demand is suspended outside .idle/.open; a message now is a shell bug.
            return [.fail(KafkaError(.illegalState, "transactional stage received a message while \(phase)"))]
        }
        if let (partition, offset) = consumed {
            if firstSeen[partition] == nil { firstSeen[partition] = offset }
            pending[partition] = max(pending[partition] ?? Int64.min, offset + 1)
        }
        messagesInTransaction += 1
        actions.append(.produce(messageIndex: index))
        return actions
    }

    /// `eosCommitInterval` elapsed (or a revoke/shutdown needs the transaction committed now).
    mutating func commitDue() -> [Action] {
        guard phase == .open else {
            if phase == .idle, waitersPending || isClosing { return release() }
            return []
        }
        phase = .flushing
        return [.suspendDemand, .flush]
    }

    mutating func flushed(error: TransactionError?) -> [Action] {
        guard phase == .flushing else { return [] }
        if let error { return handle(error) }
        phase = .sendingOffsets
        if pending.isEmpty {
            phase = .committing
            return [.commitTransaction]
        }
        return [.sendOffsets(pending)]
    }

    mutating func offsetsSent(error: TransactionError?) -> [Action] {
        guard phase == .sendingOffsets else { return [] }
        if let error { return handle(error) }
        phase = .committing
        return [.commitTransaction]
    }

    mutating func transactionCommitted(error: TransactionError?) -> [Action] {
        guard phase == .committing else { return [] }
        if let error { return handle(error) }
        let committed = pending
        lastCommitted.merge(committed) { _, new in new }
        resetTransaction()
        phase = .idle
        var actions: [Action] = [.committed(committed)]
        if waitersPending || isClosing { actions += release() }
        if !isClosing { actions.append(.resumeDemand) }
        return actions
    }

    mutating func aborted(error: TransactionError?) -> [Action] {
        guard phase == .aborting else { return [] }
        if let error, error.isFatal || !error.isAbortable { return failed(error.kafkaError) }
        // Rewind every partition the aborted transaction touched to where the last commit left it.
        var rewind: [TopicPartition: Int64] = [:]
        for partition in Set(pending.keys).union(firstSeen.keys) {
            rewind[partition] = lastCommitted[partition] ?? firstSeen[partition]
        }
        resetTransaction()
        phase = .idle
        var actions: [Action] = [.rewindSource(rewind)]
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

    private mutating func release() -> [Action] {
        waitersPending = false
        if isClosing { phase = .closed }
        return [.releaseWaiters]
    }

    private mutating func handle(_ error: TransactionError) -> [Action] {
        if error.isFatal { return failed(error.kafkaError) }
        if error.isAbortable || error.isRetriable {
            phase = .aborting
            return [.abortTransaction]
        }
        return failed(error.kafkaError)
    }

    private mutating func failed(_ error: KafkaError) -> [Action] {
        phase = .failed
        resetTransaction()
        return [.fail(error)]
    }

    private mutating func resetTransaction() {
        pending.removeAll()
        firstSeen.removeAll()
        messagesInTransaction = 0
    }
}

/// A failed transactional call, classified as librdkafka classifies it
/// (`rd_kafka_error_is_fatal` / `_txn_requires_abort` / `_is_retriable`).
struct TransactionError: Error, Equatable, Sendable {
    var kafkaError: KafkaError
    var isFatal: Bool
    var isAbortable: Bool
    var isRetriable: Bool
}
