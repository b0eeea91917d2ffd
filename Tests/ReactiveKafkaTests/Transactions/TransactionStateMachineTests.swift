import Testing

@testable import ReactiveKafka

/// A producer that performs the state machine's actions at once, records the
/// calls in order, and fails the calls a test chooses.
private struct FakeTransactionalProducer {
    var machine = TransactionStateMachine()
    var calls: [String] = []
    /// Errors the next calls of each name return, in order.
    var failures: [String: [TransactionError]] = [:]
    var demandSuspended = false
    var rewinds: [[TopicPartition: Int64]] = []
    var commits: [[TopicPartition: Int64]] = []
    var released = 0
    var failure: KafkaError?

    mutating func perform(_ actions: [TransactionStateMachine.Action]) {
        for action in actions {
            switch action {
            case .initTransactions:
                calls.append("init")
                perform(machine.initialized(error: nextFailure("init")))
            case .beginTransaction:
                calls.append("begin")
                perform(machine.began(error: nextFailure("begin")))
            case .produce(let i): calls.append("produce \(i)")
            case .flush:
                calls.append("flush")
                perform(machine.flushed(error: nextFailure("flush")))
            case .sendOffsets(let offsets):
                calls.append(
                    "sendOffsets \(offsets.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ","))"
                )
                perform(machine.offsetsSent(error: nextFailure("sendOffsets")))
            case .commitTransaction:
                calls.append("commit")
                perform(machine.transactionCommitted(error: nextFailure("commit")))
            case .abortTransaction:
                calls.append("abort")
                perform(machine.aborted(error: nextFailure("abort")))
            case .rewindSource(let offsets): rewinds.append(offsets)
            case .suspendDemand: demandSuspended = true
            case .resumeDemand: demandSuspended = false
            case .committed(let offsets): commits.append(offsets)
            case .releaseWaiters: released += 1
            case .fail(let error): failure = error
            }
        }
    }

    mutating func nextFailure(_ call: String) -> TransactionError? {
        guard var queue = failures[call], !queue.isEmpty else { return nil }
        let first = queue.removeFirst()
        failures[call] = queue
        return first
    }

    mutating func start() { perform(machine.start()) }
    mutating func message(_ index: Int, _ topic: String, _ partition: Int32, _ offset: Int64) {
        perform(machine.message(index: index, consumed: (TopicPartition(topic, partition), offset)))
    }
    mutating func tick() { perform(machine.commitDue()) }
}

private let abortable = TransactionError(
    kafkaError: KafkaError(.transactionAborted, "abortable"), isFatal: false, isAbortable: true, isRetriable: false)
private let retriable = TransactionError(
    kafkaError: KafkaError(.kafka, "timed out"), isFatal: false, isAbortable: false, isRetriable: true)
private let fenced = TransactionError(
    kafkaError: KafkaError(.fenced, "another producer with the same transactional.id took over"), isFatal: true,
    isAbortable: false, isRetriable: false)

@Suite struct TransactionStateMachineTests {
    @Test func callsHappenInKafkasOrderAtEachInterval() {
        var p = FakeTransactionalProducer()
        p.start()
        p.message(0, "in", 0, 5)
        p.message(1, "in", 0, 6)
        p.message(2, "in", 1, 3)
        p.tick()
        p.message(3, "in", 1, 4)
        p.tick()
        #expect(
            p.calls == [
                "init", "begin", "produce 0", "produce 1", "produce 2", "flush", "sendOffsets in-0:7,in-1:4", "commit",
                "begin", "produce 3", "flush", "sendOffsets in-1:5", "commit",
            ])
        #expect(p.commits == [[TopicPartition("in", 0): 7, TopicPartition("in", 1): 4], [TopicPartition("in", 1): 5]])
        #expect(!p.demandSuspended)
        #expect(p.failure == nil)
    }

    @Test func demandIsSuspendedWhileATransactionCommits() {
        var m = TransactionStateMachine()
        _ = m.start()
        _ = m.initialized(error: nil)
        #expect(
            m.message(index: 0, consumed: (TopicPartition("in", 0), 0)) == [
                .beginTransaction, .produce(messageIndex: 0),
            ])
        #expect(!m.acceptsMessages, "no message may come while begin_transaction runs")
        _ = m.began(error: nil)
        #expect(m.commitDue() == [.suspendDemand, .flush])
        // A message arriving now is refused: the shell must not pull while committing.
        #expect(m.message(index: 1, consumed: nil).first.map { if case .fail = $0 { true } else { false } } == true)
    }

    @Test func anIdleIntervalDoesNothing() {
        var p = FakeTransactionalProducer()
        p.start()
        p.tick()
        #expect(p.calls == ["init"])
    }

    @Test func theOffsetsSentAreTheNextOffsetsAfterTheLastRecordsPerPartition() {
        var p = FakeTransactionalProducer()
        p.start()
        for (i, offset) in [10, 11, 12, 20].enumerated() { p.message(i, "t", Int32(offset / 10), Int64(offset)) }
        p.tick()
        #expect(p.calls.contains("sendOffsets t-1:13,t-2:21"))
    }

    @Test func anAbortableErrorAbortsAndRewindsToTheLastCommittedOffsets() {
        var p = FakeTransactionalProducer()
        p.start()
        p.message(0, "in", 0, 0)
        p.tick() // commits in-0:1
        p.message(1, "in", 0, 1)
        p.message(2, "in", 1, 7) // never committed before: rewinds to its first offset in the transaction
        p.failures["commit"] = [abortable]
        p.tick()
        #expect(Array(p.calls.suffix(3)) == ["sendOffsets in-0:2,in-1:8", "commit", "abort"])
        #expect(p.rewinds == [[TopicPartition("in", 0): 1, TopicPartition("in", 1): 7]])
        #expect(
            p.commits == [[TopicPartition("in", 0): 1]],
            "the aborted transaction's offsets are never reported committed")
        #expect(!p.demandSuspended)
        // The stream goes on: the rewound records come again in a new transaction.
        p.message(3, "in", 0, 1)
        p.tick()
        #expect(Array(p.calls.suffix(5)) == ["begin", "produce 3", "flush", "sendOffsets in-0:2", "commit"])
        #expect(p.failure == nil)
    }

    @Test func aFencedProducerFailsTheStreamWithTheTypedError() {
        var p = FakeTransactionalProducer()
        p.start()
        p.message(0, "in", 0, 0)
        p.failures["flush"] = [fenced]
        p.tick()
        #expect(p.failure?.kind == .fenced)
        #expect(p.failure?.message.contains("took over") == true)
        #expect(!p.calls.contains("commit"))
        #expect(p.machine.phase == .failed)
    }

    @Test func aFatalInitErrorFailsBeforeAnyTransaction() {
        var p = FakeTransactionalProducer()
        p.failures["init"] = [fenced]
        p.start()
        #expect(p.failure?.kind == .fenced)
        #expect(p.calls == ["init"])
    }

    @Test func aRevokeCommitsTheOpenTransactionBeforePartitionsMove() {
        var p = FakeTransactionalProducer()
        p.start()
        p.message(0, "in", 0, 4)
        p.perform(p.machine.revokeRequested())
        #expect(Array(p.calls.suffix(3)) == ["flush", "sendOffsets in-0:5", "commit"])
        #expect(p.released == 1)
        #expect(p.commits == [[TopicPartition("in", 0): 5]])

        // With nothing open, the revoke proceeds at once.
        p.perform(p.machine.revokeRequested())
        #expect(p.released == 2)
    }

    @Test func shutdownCommitsTheOpenTransactionThenCloses() {
        var p = FakeTransactionalProducer()
        p.start()
        p.message(0, "in", 2, 9)
        p.perform(p.machine.closeRequested())
        #expect(Array(p.calls.suffix(3)) == ["flush", "sendOffsets in-2:10", "commit"])
        #expect(p.released == 1)
        #expect(p.machine.phase == .closed)
        #expect(p.demandSuspended, "a closing stage pulls nothing more")
    }

    @Test func aLastTransactionAbortedAsTheStreamClosesCanBeProducedAgainAndCommitted() {
        var p = FakeTransactionalProducer()
        p.failures["sendOffsets"] = [abortable]
        p.start()
        p.message(0, "in", 0, 4)
        p.perform(p.machine.closeRequested())
        #expect(p.machine.phase == .closed)
        #expect(p.rewinds == [[TopicPartition("in", 0): 4]])
        #expect(p.commits.isEmpty)
        // The shell produces the aborted messages again: one more transaction, committed as the last.
        let reopened1 = p.machine.reopenAfterAbort()
        #expect(reopened1)
        let reopened2 = p.machine.reopenAfterAbort()
        #expect(!reopened2, "only once per abort")
        p.message(0, "in", 0, 4)
        p.perform(p.machine.closeRequested())
        #expect(p.commits == [[TopicPartition("in", 0): 5]])
        #expect(p.machine.phase == .closed)
        let reopened3 = p.machine.reopenAfterAbort()
        #expect(!reopened3, "a close that committed is final")
    }

    @Test func onlyAMachineClosedByAnAbortReopens() {
        var p = FakeTransactionalProducer()
        p.start()
        let reopened4 = p.machine.reopenAfterAbort()
        #expect(!reopened4, "idle")
        p.message(0, "in", 0, 1)
        let reopened5 = p.machine.reopenAfterAbort()
        #expect(!reopened5, "open")
        p.failures["sendOffsets"] = [abortable]
        p.tick()
        #expect(p.rewinds.count == 1)
        let reopened6 = p.machine.reopenAfterAbort()
        #expect(!reopened6, "aborted while running: the source rewinds instead")
    }

    @Test func messagesWithoutConsumedOffsetsCommitWithoutSendingOffsets() {
        var p = FakeTransactionalProducer()
        p.start()
        p.perform(p.machine.message(index: 0, consumed: nil))
        p.tick()
        #expect(p.calls == ["init", "begin", "produce 0", "flush", "commit"])
    }

    @Test func aRetriableErrorRepeatsTheSameCallWithTheSameOffsets() {
        var p = FakeTransactionalProducer()
        p.failures["sendOffsets"] = [retriable]
        p.failures["commit"] = [retriable, retriable]
        p.start()
        p.message(0, "in", 0, 3)
        p.tick()
        #expect(
            Array(p.calls.dropFirst(3)) == [
                "flush", "sendOffsets in-0:4", "sendOffsets in-0:4", "commit", "commit", "commit",
            ])
        #expect(p.commits == [[TopicPartition("in", 0): 4]])
        #expect(p.failure == nil)
    }

    @Test func retriableErrorsBeyondTheLimitAbortTheTransaction() {
        var p = FakeTransactionalProducer()
        p.failures["commit"] = Array(repeating: retriable, count: TransactionStateMachine.maxRetries + 1)
        p.start()
        p.message(0, "in", 0, 3)
        p.tick()
        #expect(p.calls.filter { $0 == "commit" }.count == TransactionStateMachine.maxRetries + 1)
        #expect(p.calls.last == "abort")
        #expect(p.rewinds == [[TopicPartition("in", 0): 3]])
        #expect(p.failure == nil, "a retriable error is never fatal")
    }

    @Test func aRetriableInitErrorIsRetriedAndAFailedAbortFailsTheStream() {
        var p = FakeTransactionalProducer()
        p.failures["init"] = [retriable]
        p.start()
        #expect(p.calls == ["init", "init"])
        #expect(p.machine.phase == .idle)
        p.message(0, "in", 0, 0)
        p.failures["flush"] = [abortable]
        p.failures["abort"] = [fenced]
        p.tick()
        #expect(p.failure?.kind == .fenced)
        #expect(p.machine.phase == .failed)
    }

    @Test func anAbortRequestedByTheProducingCodeAbortsWithoutCommitting() {
        var p = FakeTransactionalProducer()
        p.start()
        p.message(0, "in", 0, 10)
        p.perform(p.machine.abortRequested())
        #expect(Array(p.calls.suffix(2)) == ["produce 0", "abort"])
        #expect(p.commits.isEmpty)
        #expect(p.rewinds == [[TopicPartition("in", 0): 10]])
        #expect(!p.demandSuspended)
        // Nothing open: nothing to abort.
        #expect(p.machine.abortRequested().isEmpty)
    }

    @Test func anExplicitBeginOpensATransactionThatAddedOffsetsCommitWith() {
        var p = FakeTransactionalProducer()
        p.start()
        p.perform(p.machine.begin())
        p.perform(p.machine.message(index: 0, consumed: nil))
        p.perform(p.machine.addOffsets([TopicPartition("in", 0): 8, TopicPartition("in", 1): 2]))
        p.perform(p.machine.addOffsets([TopicPartition("in", 0): 5]))
        p.tick()
        #expect(
            p.calls == ["init", "begin", "produce 0", "flush", "sendOffsets in-0:8,in-1:2", "commit"],
            "the highest offset per partition wins")
        #expect(
            p.machine.begin().first.map { if case .fail = $0 { false } else { true } } == true,
            "a new transaction can begin")
    }

    @Test func offsetsOfInterleavedPartitionsAreEachTheHighestSeen() {
        var p = FakeTransactionalProducer()
        p.start()
        for (i, (partition, offset)) in [(0, 1), (0, 2), (1, 7), (0, 3), (1, 6), (2, 0), (1, 8)].enumerated() {
            p.message(i, "t", Int32(partition), Int64(offset))
        }
        p.tick()
        #expect(p.commits == [[TopicPartition("t", 0): 4, TopicPartition("t", 1): 9, TopicPartition("t", 2): 1]])
    }
}
