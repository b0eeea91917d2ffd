import StreamKit
import Testing

@testable import ReactiveKafka

private struct UpstreamFailure: Error, Equatable {}

@Suite struct CommitterTests {
    private let p0 = TopicPartition("t", 0)
    private let p1 = TopicPartition("t", 1)
    /// Settings whose timer never fires within a test.
    private let untimed = CommitterSettings().withMaxInterval(.seconds(60))

    @Test func flushesByCountWhileUpstreamStaysOpenThenTheRestOnCompletion() async throws {
        let fake = FakeOffsetCommitter()
        let (upstream, input) = AsyncStream<CommittableOffset>.makeStream()
        let sink = Task { try await Committer.sink(untimed.withMaxBatch(10)).run(upstream) }
        // Offsets 0..<25 alternate over two partitions: partition i % 2 gets offset i / 2.
        for i in 0..<25 { input.yield(fake.offset(Int32(i % 2), Int64(i / 2))) }
        try await fake.waitForCalls(2)
        #expect(fake.committed == [[p0: 5, p1: 5], [p0: 10, p1: 10]])

        input.finish()
        try await valueWithin(sink)
        #expect(
            fake.calls == [
                .commit([p0: 5, p1: 5]),
                .commit([p0: 10, p1: 10]),
                .commit([p0: 13, p1: 12]),
            ])
    }

    @Test func flushesByTimeWhileUpstreamIsOpenAndIdle() async throws {
        let fake = FakeOffsetCommitter()
        let (upstream, input) = AsyncStream<CommittableOffset>.makeStream()
        let settings = CommitterSettings().withMaxBatch(1000).withMaxInterval(.milliseconds(50))
        let sink = Task { try await Committer.sink(settings).run(upstream) }
        input.yield(fake.offset(0, 3))
        input.yield(fake.offset(1, 8))
        input.yield(fake.offset(0, 4))
        // No more offsets arrive: only the timer can commit them.
        try await fake.waitForCalls(1)
        #expect(fake.committed == [[p0: 5, p1: 9]])

        // A second idle period commits the next offsets too.
        input.yield(fake.offset(0, 5))
        try await fake.waitForCalls(2)
        #expect(fake.committed.last == [p0: 6])

        input.finish()
        try await valueWithin(sink)
        #expect(fake.calls.count == 2)
    }

    @Test func flushesOnCompletion() async throws {
        let fake = FakeOffsetCommitter()
        let offsets = (0..<5).map { fake.offset(0, Int64($0)) }
        try await withTimeout { try await Committer.sink(untimed).run(finiteStream(offsets)) }
        #expect(fake.calls == [.commit([p0: 5])])
    }

    @Test func emptyUpstreamCommitsNothing() async throws {
        let fake = FakeOffsetCommitter()
        try await withTimeout { try await Committer.sink(untimed).run(finiteStream([CommittableOffset]())) }
        #expect(fake.calls.isEmpty)
    }

    @Test func upstreamFailureCommitsWhatIsHeldThenRethrows() async throws {
        let fake = FakeOffsetCommitter()
        let (upstream, input) = AsyncThrowingStream<CommittableOffset, any Error>.makeStream()
        input.yield(fake.offset(0, 1))
        input.yield(fake.offset(1, 2))
        input.yield(fake.offset(0, 2))
        input.finish(throwing: UpstreamFailure())
        await #expect(throws: UpstreamFailure.self) {
            try await withTimeout { try await Committer.sink(untimed).run(upstream) }
        }
        #expect(fake.calls == [.commit([p0: 3, p1: 3])])
    }

    @Test func failedCommitFailsTheSinkWithThatError() async throws {
        let failure = KafkaError(.commitFailed, "the group rebalanced")
        let fake = FakeOffsetCommitter(failure: failure)
        let offsets = (0..<5).map { fake.offset(0, Int64($0)) }
        await #expect(throws: failure) {
            try await withTimeout { try await Committer.sink(untimed.withMaxBatch(2)).run(finiteStream(offsets)) }
        }
    }

    @Test func failedCommitFailsTheSinkWhileUpstreamIsIdle() async throws {
        let failure = KafkaError(.commitFailed, "the group rebalanced")
        let fake = FakeOffsetCommitter(failure: failure)
        let (upstream, input) = AsyncStream<CommittableOffset>.makeStream()
        defer { input.finish() }
        input.yield(fake.offset(0, 0))
        // The upstream stays open and sends nothing more: the failure must still reach the sink.
        await #expect(throws: failure) {
            try await withTimeout { try await Committer.sink(untimed.withMaxBatch(1)).run(upstream) }
        }
    }

    @Test func sendAndForgetNeverWaitsAndNeverFails() async throws {
        let fake = FakeOffsetCommitter(gated: true, failure: KafkaError(.commitFailed, "would fail if awaited"))
        let offsets = (0..<7).map { fake.offset(0, Int64($0)) }
        let settings = untimed.withMaxBatch(3).withDelivery(.sendAndForget)
        try await withTimeout { try await Committer.sink(settings).run(finiteStream(offsets)) }
        #expect(fake.calls == [.forget([p0: 3]), .forget([p0: 6]), .forget([p0: 7])])
    }

    @Test func parallelismBoundsTheCommitsInFlight() async throws {
        let fake = FakeOffsetCommitter(gated: true)
        let (upstream, input) = AsyncStream<CommittableOffset>.makeStream()
        let settings = untimed.withMaxBatch(1).withParallelism(2)
        let sink = Task { try await Committer.sink(settings).run(upstream) }
        for i in 0..<6 { input.yield(fake.offset(0, Int64(i))) }
        input.finish()

        try await fake.waitForCalls(2)
        #expect(fake.inFlight == 2)
        // Release one commit at a time: each frees exactly one slot for the next.
        for call in 0..<6 {
            fake.release(call)
            if call + 2 < 6 { try await fake.waitForCalls(call + 3) }
        }
        try await valueWithin(sink)
        #expect(fake.maxInFlight == 2)
        #expect(fake.committed == (1...6).map { [p0: Int64($0)] })
    }

    @Test func commitsReachTheConsumerInTheOrderBatchesWereFormed() async throws {
        // A newer commit overtaking an older one would let the older offsets overwrite the newer on the broker.
        let fake = FakeOffsetCommitter(gated: true)
        let offsets = (0..<50).map { fake.offset(0, Int64($0)) }
        let settings = untimed.withMaxBatch(1).withParallelism(8)
        let sink = Task { try await Committer.sink(settings).run(finiteStream(offsets)) }
        try await fake.waitForCalls(8)
        fake.releaseAll()
        try await valueWithin(sink)
        #expect(fake.committed == (1...50).map { [p0: Int64($0)] })
        #expect(fake.maxInFlight == 8)
    }

    @Test func nextOffsetObservedCommitsHeldOffsetsAtCompletion() async throws {
        let fake = FakeOffsetCommitter()
        let (upstream, input) = AsyncStream<CommittableOffset>.makeStream()
        let settings = untimed.withMaxBatch(1).withCommitWhen(.nextOffsetObserved)
        let sink = Task { try await Committer.sink(settings).run(upstream) }
        // Each offset twice, as `multi` producer messages emit it.
        for o in [0, 0, 1, 1] { input.yield(fake.offset(0, Int64(o))) }
        input.yield(fake.offset(1, 7))
        // Offset 0 of p0 is committable once offset 1 was seen.
        try await fake.waitForCalls(1)
        #expect(fake.committed == [[p0: 1]])
        input.finish()
        try await valueWithin(sink)
        #expect(fake.committed == [[p0: 1], [p0: 2, p1: 8]])
    }

    @Test func batchFlowEmitsCommittedBatchesInOrder() async throws {
        let fake = FakeOffsetCommitter(gated: true)
        let offsets = (0..<6).map { fake.offset(0, Int64($0)) }
        let settings = untimed.withMaxBatch(2).withParallelism(3)
        let batches = Committer.batchFlow(settings).apply(finiteStream(offsets))
        let collected = Task { try await batches.reduce(into: [[TopicPartition: Int64]]()) { $0.append($1.offsets) } }
        try await fake.waitForCalls(3)
        // Acknowledgements arrive newest first; the flow still emits oldest first.
        for call in [2, 1, 0] { fake.release(call) }
        let emitted = try await valueWithin(collected)
        #expect(emitted == [[p0: 2], [p0: 4], [p0: 6]])
    }

    @Test func flowEmitsOneValuePerCommittedBatch() async throws {
        let fake = FakeOffsetCommitter()
        let offsets = (0..<10).map { fake.offset(Int32($0 % 3), Int64($0)) }
        let flow = Committer.flow(untimed.withMaxBatch(4))
        let count = try await withTimeout { try await flow.apply(finiteStream(offsets)).reduce(0) { n, _ in n + 1 } }
        #expect(count == 3)
        #expect(fake.calls.count == 3)
    }

    @Test func highestOffsetPerPartitionWinsInABatch() async throws {
        let fake = FakeOffsetCommitter()
        let offsets = [fake.offset(0, 5), fake.offset(1, 2), fake.offset(0, 3), fake.offset(0, 4), fake.offset(1, 1)]
        try await withTimeout { try await Committer.sink(untimed).run(finiteStream(offsets)) }
        #expect(fake.calls == [.commit([p0: 6, p1: 3])])
    }

    @Test func cancellingTheSinkEndsItWhileUpstreamIsOpen() async throws {
        let fake = FakeOffsetCommitter()
        let (upstream, input) = AsyncStream<CommittableOffset>.makeStream()
        defer { input.finish() }
        let sink = Task { try await Committer.sink(untimed.withMaxBatch(2)).run(upstream) }
        input.yield(fake.offset(0, 40))
        input.yield(fake.offset(0, 41))
        try await fake.waitForCalls(1)
        // The upstream stays open and idle: only cancellation can end the run.
        sink.cancel()
        try await valueWithin(sink)
        #expect(fake.calls == [.commit([p0: 42])])
    }

    @Test func invalidSettingsAreATypedError() async throws {
        let fake = FakeOffsetCommitter()
        await #expect(throws: KafkaError.self) {
            try await Committer.sink(CommitterSettings().withParallelism(0)).run(finiteStream([fake.offset(0, 0)]))
        }
    }
}
