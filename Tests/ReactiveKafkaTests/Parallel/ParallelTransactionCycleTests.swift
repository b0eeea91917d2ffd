import Testing

@testable import ReactiveKafka

/// The exactly-once parallel source's transaction cycle (pure): the order of its calls, the
/// gate, and the offsets it commits.
struct ParallelTransactionCycleTests {
    typealias Cycle = ParallelTransactionCycle
    // Lanes (one partition's reading each).
    let p: UInt64 = 1
    let q: UInt64 = 2

    static func error(retriable: Bool = false, abortable: Bool = false, fatal: Bool = false) -> TransactionError {
        TransactionError(
            kafkaError: KafkaError(fatal ? .fenced : .kafka, "test"), isFatal: fatal, isAbortable: abortable,
            isRetriable: retriable)
    }

    /// A cycle with a transaction open.
    func open() -> Cycle {
        var cycle = Cycle()
        #expect(cycle.enter(p) == .prepare(.initTransactions))
        #expect(cycle.initialized(error: nil) == [.openGate])
        #expect(cycle.enter(p) == .prepare(.beginTransaction))
        #expect(cycle.began(error: nil) == [.openGate])
        return cycle
    }

    @Test func theFirstOutputInitialisesAndBeginsWhileOthersWaitThenAllSend() {
        var cycle = Cycle()
        #expect(cycle.enter(p) == .prepare(.initTransactions))
        #expect(cycle.enter(q) == .wait)
        #expect(cycle.initialized(error: nil) == [.openGate])
        #expect(cycle.enter(q) == .prepare(.beginTransaction))
        #expect(cycle.enter(p) == .wait)
        #expect(cycle.began(error: nil) == [.openGate])
        #expect(cycle.enter(p) == .send)
        #expect(cycle.enter(q) == .send)
        #expect(cycle.inFlight == 2)
    }

    @Test func aCommitClosesTheGateWaitsForSendsThenCommitsTheAcknowledgedOffsetsAndReopens() {
        var cycle = open()
        #expect(cycle.enter(p) == .send)
        #expect(cycle.enter(q) == .send)
        #expect(cycle.commitRequested() == [])
        #expect(cycle.enter(p) == .wait)
        #expect(cycle.left(p, offset: 7, acknowledged: true) == [])
        #expect(cycle.left(q, offset: 3, acknowledged: true) == [.takePositions([p: [7], q: [3]])])
        let positions = [
            TopicPartition("in", 0): CommitPosition(
                nextOffset: 5, metadata: OffsetMetadataCodec.encode(base: 5, done: [7..<8], maxBytes: 100)),
            TopicPartition("in", 1): CommitPosition(nextOffset: 4),
        ]
        #expect(cycle.positionsTaken(positions) == [.sendOffsets(positions)])
        #expect(cycle.enter(q) == .wait)
        #expect(cycle.offsetsSent(error: nil) == [.commitTransaction])
        #expect(cycle.transactionCommitted(error: nil) == [.committed(positions), .openGate, .commitFinished])
        #expect(cycle.acknowledged.isEmpty)
        #expect(cycle.phase == .idle)
        // The next output opens the next transaction.
        #expect(cycle.enter(p) == .prepare(.beginTransaction))
    }

    @Test func aTransactionWhosePositionsDidNotMoveCommitsWithoutOffsets() {
        var cycle = open()
        #expect(cycle.commitRequested() == [.takePositions([:])])
        #expect(cycle.positionsTaken([:]) == [.commitTransaction])
        #expect(cycle.transactionCommitted(error: nil) == [.committed([:]), .openGate, .commitFinished])
    }

    @Test func nothingOpenAndNothingMovedMakesNoCall() {
        var cycle = Cycle()
        #expect(cycle.commitRequested() == [.takePositions([:])])
        #expect(cycle.positionsTaken([:]) == [.openGate, .commitFinished])
        #expect(cycle.phase == .uninitialized)
    }

    @Test func positionsThatMovedWithoutOutputsAreCommittedInATransactionOfTheirOwn() {
        // Records skipped (done by a previous owner) or with no outputs move positions too.
        var cycle = Cycle()
        let positions = [TopicPartition("in", 0): CommitPosition(nextOffset: 10)]
        #expect(cycle.commitRequested() == [.takePositions([:])])
        #expect(cycle.positionsTaken(positions) == [.initTransactions])
        #expect(cycle.enter(p) == .wait)
        #expect(cycle.initialized(error: nil) == [.beginTransaction])
        #expect(cycle.began(error: nil) == [.sendOffsets(positions)])
        #expect(cycle.offsetsSent(error: nil) == [.commitTransaction])
        #expect(cycle.transactionCommitted(error: nil) == [.committed(positions), .openGate, .commitFinished])
    }

    @Test func aCommitRequestedWhileAnOutputBeginsTheTransactionWaitsForIt() {
        var cycle = Cycle()
        #expect(cycle.enter(p) == .prepare(.initTransactions))
        #expect(cycle.commitRequested() == [])
        #expect(cycle.initialized(error: nil) == [.takePositions([:])])
        #expect(cycle.enter(p) == .wait)
    }

    @Test func theRecordsOfALaneLetGoAreWithdrawnThoseOfOtherLanesGoOn() {
        var cycle = open()
        #expect(cycle.commitRequested(revoking: [p]) == [.takePositions([:])])
        #expect(cycle.enter(p) == .withdraw)
        #expect(cycle.enter(q) == .wait)
        _ = cycle.positionsTaken([:])
        _ = cycle.transactionCommitted(error: nil)
        #expect(cycle.enter(p) == .withdraw)
        #expect(cycle.enter(q) == .prepare(.beginTransaction))
        #expect(cycle.began(error: nil) == [.openGate])
        #expect(cycle.enter(q) == .send)
        cycle.refuse([q])
        #expect(cycle.enter(q) == .withdraw)
    }

    @Test func anOutputNotAcknowledgedAbortsTheTransactionAndFailsTheStream() {
        var cycle = open()
        let refusal = KafkaError(.deliveryFailed, "too large")
        #expect(cycle.enter(p) == .send)
        #expect(cycle.left(p, offset: 1, acknowledged: false, failure: refusal) == [])
        #expect(cycle.enter(q) == .withdraw)
        #expect(cycle.commitRequested() == [.takePositions([:])])
        #expect(cycle.positionsTaken([TopicPartition("in", 0): CommitPosition(nextOffset: 1)]) == [.abortTransaction])
        #expect(cycle.aborted(error: nil) == [.fail(refusal), .openGate, .commitFinished])
        #expect(cycle.enter(q) == .withdraw)
        #expect(cycle.commitRequested() == [.commitFinished])
    }

    @Test func retriableErrorsAreRetriedThenTheTransactionAborts() {
        var cycle = open()
        let positions = [TopicPartition("in", 0): CommitPosition(nextOffset: 2)]
        _ = cycle.commitRequested()
        #expect(cycle.positionsTaken(positions) == [.sendOffsets(positions)])
        for _ in 0..<TransactionStateMachine.maxRetries {
            #expect(cycle.offsetsSent(error: Self.error(retriable: true)) == [.sendOffsets(positions)])
        }
        #expect(cycle.offsetsSent(error: Self.error(retriable: true)) == [.abortTransaction])
        #expect(cycle.aborted(error: nil) == [.fail(Self.error().kafkaError), .openGate, .commitFinished])
        #expect(cycle.phase == .failed)
    }

    @Test func anAbortableCommitAbortsAndFailsWithItsError() {
        var cycle = open()
        _ = cycle.commitRequested()
        #expect(cycle.positionsTaken([:]) == [.commitTransaction])
        let abortable = Self.error(abortable: true)
        #expect(cycle.transactionCommitted(error: abortable) == [.abortTransaction])
        #expect(cycle.aborted(error: nil) == [.fail(abortable.kafkaError), .openGate, .commitFinished])
    }

    @Test func aFencedProducerFailsAtOnceWithoutAborting() {
        var cycle = open()
        _ = cycle.commitRequested()
        let positions = [TopicPartition("in", 0): CommitPosition(nextOffset: 2)]
        _ = cycle.positionsTaken(positions)
        let fenced = Self.error(fatal: true)
        #expect(cycle.offsetsSent(error: fenced) == [.fail(fenced.kafkaError), .openGate, .commitFinished])
        #expect(cycle.enter(p) == .withdraw)
    }

    @Test func aFailedInitialisationFailsTheStreamAndWithdrawsWaitingOutputs() {
        var cycle = Cycle()
        #expect(cycle.enter(p) == .prepare(.initTransactions))
        #expect(cycle.initialized(error: Self.error(retriable: true)) == [.initTransactions])
        let fatal = Self.error(fatal: true)
        #expect(cycle.initialized(error: fatal) == [.fail(fatal.kafkaError), .openGate])
        #expect(cycle.enter(q) == .withdraw)
    }

    @Test func closingReportsAnOpenTransactionAndWithdrawsLaterOutputs() {
        var cycle = open()
        let wasOpen = cycle.close()
        #expect(wasOpen)
        #expect(cycle.enter(p) == .withdraw)
        #expect(cycle.commitRequested() == [.commitFinished])
        var idle = Cycle()
        let idleWasOpen = idle.close()
        #expect(!idleWasOpen)
    }
}
