import CRdKafka
import Logging
import StreamKit
import Synchronization

/// The committer of a ``TransactionalStageRun``: commits the open transaction every `eosCommitInterval`
/// (or at once when asked), aborts and rewinds on abortable errors, and at the stream's end commits
/// the last transaction, producing it again if a rebalance replaced the generation its offsets carried.
extension TransactionalStageRun {
    // MARK: Committer

    enum Work {
        case commit
        case abort
        case end(Ending)
        case stop
        case wait
    }

    func commitLoop() async {
        while true {
            let work = state.withLock { s -> Work in
                if s.failure != nil || s.finished { return .stop }
                if s.abortNow {
                    s.abortNow = false
                    s.commitNow = false
                    return .abort
                }
                if let ending = s.ending { return .end(ending) }
                if s.commitNow {
                    s.commitNow = false
                    return .commit
                }
                if let deadline = s.deadline, deadline <= .now { return .commit }
                return .wait
            }
            switch work {
            case .stop:
                return
            case .commit:
                let actions = withMachine { $0.commitDue() }
                if actions.isEmpty {
                    // Nothing open to commit: let a pump that stopped for the interval go on.
                    await effect(.resumeDemand, lastError: nil)
                } else {
                    await perform(actions)
                }
            case .abort:
                await perform(withMachine { $0.abortRequested() })
            case .end(let ending):
                switch ending {
                case .complete:
                    await perform(withMachine { $0.closeRequested() })
                    if let messages = takeReplay() {
                        await produceLastTransactionAgain(messages)
                        continue // commits them as the last transaction
                    }
                case .abort(let error):
                    await perform(withMachine { $0.abortRequested() })
                    fail(error)
                }
                return
            case .wait:
                await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                    let resumeNow = state.withLock { s -> Bool in
                        if s.failure != nil || s.finished || s.abortNow || s.commitNow || s.ending != nil {
                            return true
                        }
                        if let deadline = s.deadline {
                            if deadline <= .now { return true }
                            if s.sleeper == nil {
                                s.sleeper = Task { [weak self] in
                                    try? await Task.sleep(until: deadline, clock: .continuous)
                                    self?.timerFired()
                                }
                            }
                        }
                        s.committer = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
        }
    }

    func timerFired() {
        state.withLock { $0.sleeper = nil }
        wakeCommitter()
    }

    /// Performs a commit or abort sequence and its effects.
    func perform(_ actions: [TransactionStateMachine.Action]) async {
        guard !actions.isEmpty else { return }
        let outcome = await performTransactionActions(actions, groupMetadata: offsetsGroup) { action, lastError in
            await self.effect(action, lastError: lastError)
        }
        if outcome.aborted, let cause = outcome.lastError {
            logger.warning("transaction aborted", metadata: ["cause": "\(cause.kafkaError)"])
        }
        if let failure = outcome.failure { fail(failure) }
    }

    /// Performs a non-transactional action; `lastError` is the last transactional call's failure
    /// (the cause of an abort, which the stream's failure names when it gives up).
    func effect(_ action: TransactionStateMachine.Action, lastError: TransactionError?) async {
        switch action {
        case .suspendDemand:
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    s.committing = true
                    s.sleeper?.cancel()
                    s.sleeper = nil
                    if s.pumpBusy && s.failure == nil {
                        s.committerForPump = continuation
                        return false
                    }
                    return true
                }
                if resumeNow { continuation.resume() }
            }
        case .resumeDemand:
            let (pump, readAhead) = state.withLock {
                s -> (UnsafeContinuation<Void, Never>?, TransactionalReadAhead<Prepared>?) in
                s.committing = false
                s.deadline = nil
                defer { s.pump = nil }
                return (s.pump, s.readAhead)
            }
            readAhead?.commitEnded()
            pump?.resume()
        case .committed(let offsets):
            let (sources, downstream) = state.withLock {
                s -> ([any TransactionalSourceLink], UnsafeContinuation<Void, Never>?) in
                if emitsResults {
                    s.ready.reserveCapacity(s.ready.count + s.held.count)
                    for held in s.held { s.ready.append(result(held, s.outcomes)) }
                }
                resetTransaction(&s)
                s.consecutiveAborts = 0
                s.deliveryFailure = nil
                defer { s.downstream = nil }
                return (Array(s.sources.values), s.downstream)
            }
            for source in sources { source.committed(offsets) }
            downstream?.resume()
        case .rewindSource(let offsets):
            let (sources, unrewindable, ending, delivery, aborts, lastMessages) = state.withLock {
                s -> ([any TransactionalSourceLink], Bool, Ending?, KafkaError?, Int, [Message]) in
                let unrewindable = s.unrewindable
                let lastMessages = s.ending?.isComplete == true ? s.held.map(\.message) : []
                let delivery = s.deliveryFailure.map { deliveryError($0, s) }
                if let code = lastError?.kafkaError.code,
                    TransactionError.meansPartitionsMoved(rd_kafka_resp_err_t(code))
                {
                    s.refusedMetadata = s.sentMetadata
                }
                s.deliveryFailure = nil
                s.consecutiveAborts += 1
                resetTransaction(&s)
                for (partition, next) in s.machine.lastAbortedNext {
                    s.stale[partition] = max(s.stale[partition] ?? Int64.min, next - 1)
                }
                return (Array(s.sources.values), unrewindable, s.ending, delivery, s.consecutiveAborts, lastMessages)
            }
            let id = transactionalProducer.transactionalId
            if let delivery, Self.isPermanent(delivery.code) {
                // Replaying would fail the same record again, forever.
                fail(delivery)
                return
            }
            // Why the transaction was aborted: a record's delivery, or a call (refused offsets).
            let failure = delivery ?? lastError?.kafkaError
            switch ending {
            case .abort?:
                return // the stream ends with its own error: nothing is read again
            case .complete?:
                if delivery == nil, aborts <= Self.maxConsecutiveAborts, let code = failure?.code,
                    TransactionError.meansPartitionsMoved(rd_kafka_resp_err_t(code)),
                    replayLastTransaction(lastMessages)
                {
                    logger.warning(
                        "the last transaction's offsets were refused for a generation a rebalance replaced; producing its messages again in a new transaction",
                        metadata: [
                            "transactional.id": "\(id)", "messages": "\(lastMessages.count)",
                            "cause": "\(failure.map(\.message) ?? "")",
                        ])
                    return
                }
                fail(
                    KafkaError(
                        .transactionAborted,
                        "the last transaction of '\(id)' was aborted as the stream completed\(failure.map { " (\($0.message))" } ?? ""); "
                            + "nothing of it was committed: its records are read again when the stream restarts from the committed offsets"
                    ))
                return
            case nil:
                break
            }
            if aborts > Self.maxConsecutiveAborts {
                fail(
                    KafkaError(
                        .transactionAborted,
                        "\(aborts) transactions of '\(id)' in a row were aborted without one committing; giving up. Nothing of them was committed"
                            + (failure.map { ". The last was aborted because \($0.message)" } ?? ""),
                        code: failure?.code, partitions: failure?.partitions ?? []))
                return
            }
            if unrewindable || sources.isEmpty {
                fail(
                    KafkaError(
                        .transactionAborted,
                        "a transaction of '\(id)' was aborted\(failure.map { " (\($0.message))" } ?? "") and its messages cannot be read again: they did not come from Transactional.source. "
                            + "Nothing of it was committed; restart the stream from the committed offsets"))
                return
            }
            for source in sources {
                do {
                    try await source.rewind(offsets)
                } catch {
                    fail(
                        KafkaError(
                            error.kind, "rewinding the source after an aborted transaction failed: \(error.message)",
                            code: error.code))
                    return
                }
            }
        case .fail(let error):
            fail(error)
        case .releaseWaiters, .produce, .initTransactions, .beginTransaction, .flush, .sendOffsets, .commitTransaction,
            .abortTransaction:
            break
        }
    }

    /// Whether the stream's last transaction, just aborted as upstream completed, can be produced
    /// again from `messages` (its offsets were refused for their generation, and every partition
    /// is still this member's): if so, schedules it for the commit loop and reopens the machine.
    func replayLastTransaction(_ messages: [Message]) -> Bool {
        guard !messages.isEmpty else { return false }
        guard messages.allSatisfy({ !$0.passThrough.partition.hasEnded }) else { return false }
        return state.withLock { s in
            guard s.failure == nil, s.machine.reopenAfterAbort() else { return false }
            s.replay = messages
            return true
        }
    }

    /// The messages ``replayLastTransaction(_:)`` scheduled, taken once.
    func takeReplay() -> [Message]? {
        state.withLock { s in
            defer { s.replay = nil }
            return s.replay
        }
    }

    /// Produces the stream's last transaction's messages again, in a new transaction that the
    /// commit loop then commits as the last (see ``replayLastTransaction(_:)``). Its offsets go
    /// with the generation that replaced the refused one (`offsetsGroup` waits for it).
    func produceLastTransactionAgain(_ messages: [Message]) async {
        var cache = ProducerEngine.TopicCache()
        do {
            for message in messages {
                if inFlight.load(ordering: .acquiring) >= parallelism { try await waitForSpace() }
                let current = try Prepared(message, settings)
                let gate = state.withLock { s -> Gate in
                    if s.failure != nil || s.finished { return .stop }
                    // Revoked or lost meanwhile: its next owner reads it.
                    if current.offset.partition.hasEnded { return .drop }
                    s.stale[current.offset.partition.topicPartition] = nil
                    let admission = s.machine.admit(
                        consumed: (current.offset.partition.topicPartition, current.offset.offset))
                    guard admission != .notNow else { return .stop }
                    return entered(current, &s, begin: admission == .beginThenProduce)
                }
                guard case .go(let begin, let transaction, let firstRecord) = gate else {
                    if case .drop = gate { continue }
                    return
                }
                if begin { try await beginTransaction() }
                guard
                    try await produceRecords(
                        of: current, from: 0, transaction: transaction, firstRecord: firstRecord, cache: &cache)
                else { return }
            }
        } catch {
            fail(error)
        }
    }

    /// Aborting and replaying more often than this in a row fails the stage.
    static var maxConsecutiveAborts: Int { 5 }

    /// Delivery errors that no retry of the same record can cure.
    static func isPermanent(_ code: Int32?) -> Bool {
        guard let code else { return false }
        switch rd_kafka_resp_err_t(code) {
        case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION, RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC,
            RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
            RD_KAFKA_RESP_ERR_INVALID_RECORD, RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE,
            RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, RD_KAFKA_RESP_ERR__INVALID_ARG:
            return true
        default:
            return false
        }
    }

    /// The typed error for a failed delivery, naming the record's topic when a flow still holds it.
    func deliveryError(_ report: DeliveryReport, _ s: State) -> KafkaError {
        let index = Int(report.token & 0xFFFF_FFFF)
        var topic = s.topics.count == 1 ? s.topics.first! : "one of the topics \(s.topics.sorted())"
        // A sink's held messages are not numbered by record (only a flow keeps outcomes).
        if emitsResults, let held = s.held.last(where: { $0.firstRecord <= index }) {
            switch held.message {
            case .single(let record, _): topic = record.topic
            case .multi(let records, _):
                if index - held.firstRecord < records.count { topic = records[index - held.firstRecord].topic }
            case .passThrough: break
            }
        }
        return report.failure(topic: topic)
    }

    /// The group metadata to send the open transaction's offsets with: their source's current
    /// generation. Throws (an abortable error naming them) when a partition of the transaction
    /// was revoked or lost after its records were let in: committing them now would commit
    /// records their next owner reads too.
    func offsetsGroup() async throws(TransactionError) -> ConsumerGroupMetadata? {
        // A cooperative member's rejoin replaces its generation, which it learns in its next
        // rebalance callback: offsets sent in between would be refused and abort the transaction.
        let (sources, refused) = state.withLock { s in
            defer { s.refusedMetadata = nil }
            return (Array(s.sources.values), s.refusedMetadata)
        }
        for source in sources {
            // Refused for its generation: sending the same again would only abort again.
            if let refused { await source.waitForMetadata(replacing: refused) }
            await source.waitWhileRejoining()
        }
        let (entered, last) = state.withLock { s in (Array(s.entered.values), s.lastEntered) }
        let moved = Set(entered.filter(\.hasEnded).map(\.topicPartition))
        guard moved.isEmpty else {
            let list = moved.sorted().map(\.description).joined(separator: ", ")
            throw TransactionError(
                kafkaError: KafkaError(
                    .transactionAborted,
                    "the transaction of '\(transactionalProducer.transactionalId)' holds records of \(list), which this member no longer owns "
                        + "(revoked or lost before the transaction committed): it is aborted, and their next owner reads them",
                    partitions: moved),
                isFatal: false, isAbortable: true, isRetriable: false)
        }
        let metadata = (last ?? entered.first)?.groupMetadata
        state.withLock { $0.sentMetadata = metadata }
        return metadata
    }

    func resetTransaction(_ s: inout State) {
        s.entered.removeAll(keepingCapacity: true)
        s.held.removeAll(keepingCapacity: true)
        s.outcomes.removeAll(keepingCapacity: true)
        s.transaction &+= 1
        s.unrewindable = false
        s.lastEntered = nil
        s.deadline = nil
    }

    func result(_ held: Held, _ outcomes: [Outcome]) -> Result {
        func metadata(_ record: ProducerRecord<Key, Value>, _ index: Int) -> RecordMetadata {
            let outcome = index < outcomes.count ? outcomes[index] : Outcome()
            return RecordMetadata(
                topic: record.topic, partition: outcome.partition, offset: outcome.offset, timestamp: outcome.timestamp)
        }
        switch held.message {
        case .single(let record, let passThrough):
            return .single(metadata(record, held.firstRecord), record, passThrough: passThrough)
        case .multi(let records, let passThrough):
            return .multi(
                records.enumerated().map { ProducedRecord(metadata: metadata($1, held.firstRecord + $0), record: $1) },
                passThrough: passThrough)
        case .passThrough(let passThrough):
            return .passThrough(passThrough)
        }
    }

}
