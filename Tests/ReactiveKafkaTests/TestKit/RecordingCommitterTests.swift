import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Testing

/// ``RecordingCommitter``: commits through the Committer recorded in order, refusals on
/// request, and waiting for commits (satisfied, timed out, cancelled).
@Suite struct RecordingCommitterTests {
    static func offsets(_ committer: RecordingCommitter, topic: String = "t", _ positions: [(Int32, Int64)]) throws
        -> [CommittableOffset]
    {
        try positions.map {
            try ConsumerResultFactory.committableOffset(
                topic: topic, partition: $0.0, offset: $0.1, committer: committer)
        }
    }

    @Test func theCommitterSinkCommitsTheHighestOffsetPerPartitionInBatches() async throws {
        let committer = RecordingCommitter()
        let offsets = try Self.offsets(committer, [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)])
        try await Source(finiteStream(offsets)).run(into: Committer.sink(CommitterSettings().withMaxBatch(2)))
        #expect(
            committer.commits.map(\.offsets) == [
                [TopicPartition("t", 0): 1, TopicPartition("t", 1): 1],
                [TopicPartition("t", 0): 2, TopicPartition("t", 1): 2],
                [TopicPartition("t", 0): 3, TopicPartition("t", 1): 3],
            ])
        #expect(committer.committedOffsets == [TopicPartition("t", 0): 3, TopicPartition("t", 1): 3])
        #expect(committer.commits.map(\.awaited) == [true, true, true])
    }

    @Test func refusedCommitsFailTheCommitterWithTheGivenErrorAndAreNotCounted() async throws {
        let committer = RecordingCommitter()
        committer.failCommits(with: KafkaError(.commitFailed, "the broker is unhappy"))
        let offsets = try Self.offsets(committer, [(0, 0), (0, 1)])
        let error = await #expect(throws: KafkaError.self) {
            try await Source(finiteStream(offsets)).run(into: Committer.sink(CommitterSettings()))
        }
        #expect(error?.kind == .commitFailed)
        #expect(error?.message == "the broker is unhappy")
        #expect(committer.commits.isEmpty)
        #expect(committer.refusedCommits.map(\.offsets) == [[TopicPartition("t", 0): 2]])
        #expect(committer.committedOffsets.isEmpty)
    }

    @Test func aCountedFailureRefusesThatManyCommitsThenAcceptsAgain() async throws {
        let committer = RecordingCommitter()
        committer.failCommits(with: KafkaError(.commitTimeout, "slow"), count: 2)
        let offsets = try Self.offsets(committer, [(0, 0), (0, 1), (0, 2)])
        for offset in offsets.prefix(2) {
            await #expect(throws: KafkaError.self) { try await offset.commit() }
        }
        try await offsets[2].commit()
        #expect(committer.refusedCommits.count == 2)
        #expect(committer.committedOffsets == [TopicPartition("t", 0): 3])
        committer.failCommits(with: KafkaError(.commitFailed, "again"))
        await #expect(throws: KafkaError.self) { try await offsets[0].commit() }
        committer.acceptCommits()
        try await offsets[0].commit()
        // The latest commit wins, as on a broker: a lower offset committed last rewinds.
        #expect(committer.committedOffsets == [TopicPartition("t", 0): 1])
    }

    @Test func waitingReturnsOnceEveryPartitionReachedItsOffset() async throws {
        let committer = RecordingCommitter()
        let offsets = try Self.offsets(committer, [(0, 4), (1, 9)])
        let waiter = Task {
            try await committer.waitUntilCommitted([TopicPartition("t", 0): 5, TopicPartition("t", 1): 10])
        }
        try await offsets[0].commit()
        try await offsets[1].commit()
        try await waiter.value
        // Already reached: returns at once.
        try await committer.waitUntilCommitted([TopicPartition("t", 0): 5])
    }

    @Test func waitingTimesOutSayingWhatWasExpectedAndWhatCame() async throws {
        let committer = RecordingCommitter()
        try await Self.offsets(committer, [(0, 1)])[0].commit()
        let error = await #expect(throws: KafkaError.self) {
            try await committer.waitUntilCommitted([TopicPartition("t", 0): 5], timeout: .milliseconds(50))
        }
        #expect(error?.kind == .commitTimeout)
        #expect(error?.message.contains("expected commits [t-0: 5]") == true)
        #expect(error?.message.contains("committed so far: [t-0: 2]") == true)
    }

    @Test func waitingEndsWhenItsTaskIsCancelled() async throws {
        let committer = RecordingCommitter()
        let waiter = Task {
            try await committer.waitUntilCommitted([TopicPartition("t", 0): 1], timeout: .seconds(600))
        }
        waiter.cancel()
        let error = await #expect(throws: KafkaError.self) { try await waiter.value }
        #expect(error?.kind == .cancelled)
    }
}
