import Testing

@testable import ReactiveKafka

@Suite struct CommitterBatchingStateMachineTests {
    private let fake = FakeOffsetCommitter()
    private let start = ContinuousClock.now
    private let p0 = TopicPartition("t", 0)
    private let p1 = TopicPartition("t", 1)

    private func machine(_ configure: (CommitterSettings) -> CommitterSettings = { $0 })
        -> CommitterBatchingStateMachine
    {
        CommitterBatchingStateMachine(
            settings: configure(CommitterSettings().withMaxBatch(3).withMaxInterval(.seconds(1))))
    }

    @Test func fullBatchIsReturnedAtMaxBatch() throws {
        var m = machine()
        #expect(m.observe(fake.offset(0, 0), now: start) == nil)
        #expect(m.observe(fake.offset(1, 7), now: start) == nil)
        let batchResult = m.observe(fake.offset(0, 1), now: start)
        let batch = try #require(batchResult)
        #expect(batch.batchSize == 3)
        #expect(batch.offsets == [p0: 2, p1: 8])
        #expect(m.batch.isEmpty)
        #expect(m.deadline == nil)
    }

    @Test func highestOffsetPerPartitionWins() throws {
        var m = machine()
        _ = m.observe(fake.offset(0, 5), now: start)
        _ = m.observe(fake.offset(0, 3), now: start)
        let batchResult = m.observe(fake.offset(0, 4), now: start)
        let batch = try #require(batchResult)
        #expect(batch.offsets == [p0: 6])
    }

    @Test func batchIsDueMaxIntervalAfterItsFirstOffset() throws {
        var m = machine()
        #expect(m.due(now: start + .seconds(5)) == nil)
        _ = m.observe(fake.offset(0, 0), now: start)
        _ = m.observe(fake.offset(0, 1), now: start + .milliseconds(900))
        #expect(m.deadline == start + .seconds(1))
        #expect(m.due(now: start + .milliseconds(999)) == nil)
        let batchResult = m.due(now: start + .seconds(1))
        let batch = try #require(batchResult)
        #expect(batch.offsets == [p0: 2])
        #expect(m.deadline == nil)
        #expect(m.due(now: start + .seconds(10)) == nil)
    }

    @Test func nextBatchTimesFromItsOwnFirstOffset() throws {
        var m = machine()
        _ = m.observe(fake.offset(0, 0), now: start)
        #expect(m.due(now: start + .seconds(1)) != nil)
        _ = m.observe(fake.offset(0, 1), now: start + .seconds(3))
        #expect(m.deadline == start + .seconds(4))
    }

    @Test func flushAllReturnsWhatIsHeld() throws {
        var m = machine()
        #expect(m.flushAll() == nil)
        _ = m.observe(fake.offset(1, 9), now: start)
        let batchResult = m.flushAll()
        let batch = try #require(batchResult)
        #expect(batch.offsets == [p1: 10])
        #expect(m.flushAll() == nil)
    }

    @Test func nextOffsetObservedCommitsAnOffsetOnlyOnceALaterOneIsSeen() throws {
        var m = machine { $0.withMaxBatch(1).withCommitWhen(.nextOffsetObserved) }
        #expect(m.observe(fake.offset(0, 0), now: start) == nil)
        // The same offset again (a `multi` message emitting it twice) does not release it.
        #expect(m.observe(fake.offset(0, 0), now: start) == nil)
        #expect(m.observe(fake.offset(1, 4), now: start) == nil)
        let firstResult = m.observe(fake.offset(0, 1), now: start)
        let first = try #require(firstResult)
        #expect(first.offsets == [p0: 1])
        #expect(m.observe(fake.offset(0, 1), now: start) == nil)
        let secondResult = m.observe(fake.offset(1, 5), now: start)
        let second = try #require(secondResult)
        #expect(second.offsets == [p1: 5])
        // Completion commits the offsets still held back.
        let restResult = m.flushAll()
        let rest = try #require(restResult)
        #expect(rest.offsets == [p0: 2, p1: 6])
    }

    @Test func heldOffsetsAloneAreNeverDue() {
        // Nothing can be committed while every offset waits for its successor, so
        // there is no deadline: a timer must not wake (let alone spin) for it.
        var m = machine { $0.withCommitWhen(.nextOffsetObserved) }
        _ = m.observe(fake.offset(0, 0), now: start)
        _ = m.observe(fake.offset(1, 0), now: start)
        #expect(m.due(now: start + .seconds(5)) == nil)
        #expect(m.deadline == nil || m.deadline! > start + .seconds(5))
    }

    @Test func nextOffsetObservedBatchIsDueFromItsFirstCommittableOffset() throws {
        var m = machine { $0.withCommitWhen(.nextOffsetObserved) }
        _ = m.observe(fake.offset(0, 0), now: start)
        _ = m.observe(fake.offset(0, 1), now: start + .seconds(2))
        #expect(m.deadline == start + .seconds(3))
        let batchResult = m.due(now: start + .seconds(3))
        let batch = try #require(batchResult)
        #expect(batch.offsets == [p0: 1])
        // offset 1 is still held: nothing is due until offset 2 arrives.
        #expect(m.due(now: start + .seconds(10)) == nil)
        let last = m.flushAll()
        #expect(last?.offsets == [p0: 2])
    }
}
