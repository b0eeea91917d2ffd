import Synchronization

/// The thin shell between a ``TransactionStateMachine`` and librdkafka: performs
/// the machine's actions in order, feeding each transactional call's outcome
/// back into the machine, and hands every other action (produce, demand,
/// rewind, committed, fail, …) to the caller.
///
/// The machine lives behind a lock because producing tasks feed it messages
/// while a commit is under way elsewhere; the lock is never held across a call.
final class TransactionDriver: Sendable {
    let machine: Mutex<TransactionStateMachine>
    let producer: TransactionalProducerEngine

    init(producer: TransactionalProducerEngine) {
        self.machine = Mutex(TransactionStateMachine())
        self.producer = producer
    }

    /// What a run of actions ended with.
    struct Outcome {
        /// The last error a call returned (the cause of an abort, or of a failure).
        var lastError: TransactionError?
        /// Whether the open transaction was aborted.
        var aborted = false
        /// The failure the machine reported, if it failed.
        var failure: KafkaError?
    }

    /// Performs `actions` and everything they lead to. `groupMetadata` gives the consumer
    /// group for `sendOffsets`; `effect` receives every action that is not a transactional call.
    func perform(
        _ actions: [TransactionStateMachine.Action],
        groupMetadata: () -> ConsumerGroupMetadata?,
        effect: (TransactionStateMachine.Action) async -> Void
    ) async -> Outcome {
        var outcome = Outcome()
        var queue = actions[...]
        while let action = queue.popFirst() {
            let next: [TransactionStateMachine.Action]
            switch action {
            case .initTransactions:
                let error = await producer.initTransactions()
                if let error { outcome.lastError = error }
                next = machine.withLock { $0.initialized(error: error) }
            case .beginTransaction:
                let error = await producer.beginTransaction()
                if let error { outcome.lastError = error }
                next = machine.withLock { $0.began(error: error) }
            case .flush:
                let error = await producer.flush()
                if let error { outcome.lastError = error }
                next = machine.withLock { $0.flushed(error: error) }
            case .sendOffsets(let offsets):
                let error: TransactionError?
                if let group = groupMetadata() {
                    error = await producer.sendOffsets(offsets, group: group)
                } else {
                    error = TransactionError(
                        kafkaError: KafkaError(.illegalState, "consumed offsets were added to the transaction without the consumer group metadata to commit them with"),
                        isFatal: false, isAbortable: false, isRetriable: false)
                }
                if let error { outcome.lastError = error }
                next = machine.withLock { $0.offsetsSent(error: error) }
            case .commitTransaction:
                let error = await producer.commitTransaction()
                if let error { outcome.lastError = error }
                next = machine.withLock { $0.transactionCommitted(error: error) }
            case .abortTransaction:
                let error = await producer.abortTransaction()
                if let error { outcome.lastError = error }
                next = machine.withLock { $0.aborted(error: error) }
                if error == nil { outcome.aborted = true }
            case .fail(let error):
                outcome.failure = outcome.failure ?? error
                await effect(action)
                next = []
            default:
                await effect(action)
                next = []
            }
            queue = next[...] + queue
        }
        return outcome
    }
}
