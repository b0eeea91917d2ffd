import Synchronization

/// The owner of a ``TransactionStateMachine`` and its producer: a transactional
/// stage or producer. The machine lives behind the owner's lock because producing
/// tasks feed it messages while a commit is under way elsewhere; that lock is never
/// held across a librdkafka call.
protocol TransactionMachineHost: AnyObject, Sendable {
    var transactionalProducer: TransactionalProducerEngine { get }
    func withMachine<R>(_ body: (inout TransactionStateMachine) -> R) -> R
}

/// What ``TransactionMachineHost/performTransactionActions(_:groupMetadata:effect:)`` ended with.
struct TransactionOutcome {
    /// The last error a call returned (the cause of an abort, or of a failure).
    var lastError: TransactionError?
    /// Whether the open transaction was aborted.
    var aborted = false
    /// The failure the machine reported, if it failed.
    var failure: KafkaError?
}

/// The thin shell between a ``TransactionStateMachine`` and librdkafka: performs
/// the machine's actions in order, feeding each transactional call's outcome
/// back into the machine, and hands every other action (produce, demand,
/// rewind, committed, fail, …) to the caller.
extension TransactionMachineHost {
    /// Performs `actions` and everything they lead to. `groupMetadata` gives the consumer
    /// group for `sendOffsets`, or throws why the offsets must not be sent (the transaction is
    /// then handled as if the send had failed with that error); `effect` receives every action
    /// that is not a transactional call, with the last error a call returned so far (what an
    /// abort's rewind or failure reports).
    func performTransactionActions(
        _ actions: [TransactionStateMachine.Action],
        groupMetadata: () async throws(TransactionError) -> ConsumerGroupMetadata?,
        effect: (TransactionStateMachine.Action, TransactionError?) async -> Void
    ) async -> TransactionOutcome {
        let producer = transactionalProducer
        var outcome = TransactionOutcome()
        var queue = actions[...]
        while let action = queue.popFirst() {
            let next: [TransactionStateMachine.Action]
            switch action {
            case .initTransactions:
                let error = await producer.initTransactions()
                if let error { outcome.lastError = error }
                next = withMachine { $0.initialized(error: error) }
            case .beginTransaction:
                let error = await producer.beginTransaction()
                if let error { outcome.lastError = error }
                next = withMachine { $0.began(error: error) }
            case .flush:
                let error = await producer.flush()
                if let error { outcome.lastError = error }
                next = withMachine { $0.flushed(error: error) }
            case .sendOffsets(let offsets):
                let error: TransactionError?
                do throws(TransactionError) {
                    if let group = try await groupMetadata() {
                        error = await producer.sendOffsets(offsets, group: group)
                    } else {
                        error = TransactionError(
                            kafkaError: KafkaError(
                                .illegalState,
                                "consumed offsets were added to the transaction without the consumer group metadata to commit them with"
                            ),
                            isFatal: false, isAbortable: false, isRetriable: false)
                    }
                } catch let refusal {
                    error = refusal
                }
                if let error { outcome.lastError = error }
                next = withMachine { $0.offsetsSent(error: error) }
            case .commitTransaction:
                let error = await producer.commitTransaction()
                if let error { outcome.lastError = error }
                next = withMachine { $0.transactionCommitted(error: error) }
            case .abortTransaction:
                let error = await producer.abortTransaction()
                if let error { outcome.lastError = error }
                next = withMachine { $0.aborted(error: error) }
                if error == nil { outcome.aborted = true }
            case .fail(let error):
                outcome.failure = outcome.failure ?? error
                await effect(action, outcome.lastError)
                next = []
            default:
                await effect(action, outcome.lastError)
                next = []
            }
            queue = next[...] + queue
        }
        return outcome
    }
}
