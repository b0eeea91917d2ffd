import Synchronization
import Testing

@testable import ReactiveKafka

/// The hand-over of a flexiFlow's collected records between its pump and the producer's
/// poll thread (``ProducerFlowBatch``): a pump that comes back while the poll thread
/// produces its batch waits suspended, without spinning, and gets the batch back when the
/// flush is done. The poll thread's side is played by the test, step by step.
@Suite struct ProducerFlowBatchHandOverTests {
    static func makeBatch() -> ProducerFlowBatch {
        ProducerFlowBatch(receiver: 1, token: { UInt64($0) }, refused: { _, _, _ in })
    }

    /// The poll thread claims a parked batch, as `flushIfParked` does.
    static func claim(_ batch: ProducerFlowBatch) -> Bool {
        batch.state.compareExchange(
            expected: ProducerFlowBatch.parked, desired: ProducerFlowBatch.flushing, ordering: .acquiring
        ).exchanged
    }

    @Test func aPumpBackWhileThePollThreadIsIdleTakesTheBatchAtOnce() {
        let batch = Self.makeBatch()
        batch.park()
        #expect(batch.tryUnpark())
        #expect(batch.state.load(ordering: .relaxed) == ProducerFlowBatch.active)
        #expect(!Self.claim(batch), "an active batch is the pump's: the poll thread cannot claim it")
    }

    @Test func aPumpBackDuringAFlushWaitsSuspendedUntilThePollThreadHandsItBack() async throws {
        let batch = Self.makeBatch()
        batch.park()
        #expect(Self.claim(batch))
        #expect(!batch.tryUnpark(), "the poll thread is producing the batch")
        let returned = Atomic<Bool>(false)
        let pump = Task {
            await batch.unparkAfterFlush()
            returned.store(true, ordering: .sequentiallyConsistent)
        }
        // The pump registers itself as waiting; it must not get the batch while the flush runs.
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        while batch.state.load(ordering: .acquiring) != ProducerFlowBatch.waiting, clock.now < deadline {
            try await Task.sleep(for: .milliseconds(1))
        }
        #expect(batch.state.load(ordering: .acquiring) == ProducerFlowBatch.waiting)
        try await Task.sleep(for: .milliseconds(20))
        let returnedEarly = returned.load(ordering: .sequentiallyConsistent)
        #expect(!returnedEarly, "the pump waits while the poll thread owns the batch")
        // The flush is done: as flushIfParked does, the poll thread finds the pump waiting.
        #expect(
            !batch.state.compareExchange(
                expected: ProducerFlowBatch.flushing, desired: ProducerFlowBatch.parked, ordering: .releasing
            ).exchanged)
        batch.handBack()
        await pump.value
        let returnedAfterHandBack = returned.load(ordering: .sequentiallyConsistent)
        #expect(returnedAfterHandBack)
        #expect(batch.state.load(ordering: .acquiring) == ProducerFlowBatch.active, "the batch is the pump's again")
        #expect(batch.waiter == nil)
    }

    @Test func aFlushEndingBeforeThePumpWaitsLetsThePumpTakeTheBatchItself() async {
        let batch = Self.makeBatch()
        batch.park()
        #expect(Self.claim(batch))
        #expect(!batch.tryUnpark())
        // The flush ends before the pump suspends: the batch is parked again, nobody to resume.
        #expect(
            batch.state.compareExchange(
                expected: ProducerFlowBatch.flushing, desired: ProducerFlowBatch.parked, ordering: .releasing
            ).exchanged)
        await batch.unparkAfterFlush()
        #expect(batch.state.load(ordering: .acquiring) == ProducerFlowBatch.active)
        #expect(batch.waiter == nil)
    }
}
