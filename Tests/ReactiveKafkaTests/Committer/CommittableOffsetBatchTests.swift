import Testing

@testable import ReactiveKafka

@Suite struct CommittableOffsetBatchTests {
    private let p0 = TopicPartition("t", 0)
    private let p1 = TopicPartition("t", 1)

    @Test func committingAnOffsetStoresTheNextOffsetToRead() async throws {
        let fake = FakeOffsetCommitter()
        let offset = CommittableOffset(
            partitionOffset: PartitionOffset(groupId: "g", topicPartition: p1, offset: 99),
            metadata: "m",
            committer: fake)
        #expect(offset.position == CommitPosition(nextOffset: 100, metadata: "m"))
        try await offset.commit()
        #expect(fake.calls == [.commit([p1: 100])])
    }

    @Test func highestOffsetPerPartitionWinsAndEveryOffsetCounts() {
        let fake = FakeOffsetCommitter()
        var batch = CommittableOffsetBatch()
        #expect(batch.isEmpty)
        batch.add(fake.offset(0, 7))
        batch.add(fake.offset(0, 2))
        batch.add(fake.offset(1, 1))
        #expect(batch.batchSize == 3)
        #expect(batch.offsets == [p0: 8, p1: 2])

        var other = CommittableOffsetBatch([fake.offset(0, 5), fake.offset(1, 9)])
        other.add(batch)
        #expect(other.batchSize == 5)
        #expect(other.offsets == [p0: 8, p1: 10])
        #expect(other.description == "CommittableOffsetBatch(t-0:8, t-1:10)")
    }

    @Test func eachConsumerCommitsOnlyItsOwnPartitions() async throws {
        let first = FakeOffsetCommitter()
        let second = FakeOffsetCommitter()
        let batch = CommittableOffsetBatch([first.offset(0, 1), second.offset(1, 4), first.offset(2, 3)])
        try await batch.commit()
        #expect(first.calls == [.commit([p0: 2, TopicPartition("t", 2): 4])])
        #expect(second.calls == [.commit([p1: 5])])

        batch.commitAndForget()
        #expect(first.calls.last == .forget([p0: 2, TopicPartition("t", 2): 4]))
        #expect(second.calls.last == .forget([p1: 5]))
    }

    @Test func emptyBatchCommitsNothing() async throws {
        var merged = CommittableOffsetBatch()
        merged.add(CommittableOffsetBatch())
        for empty in [CommittableOffsetBatch(), CommittableOffsetBatch([]), merged] {
            #expect(empty.isEmpty)
            #expect(empty.batchSize == 0)
            #expect(empty.offsets.isEmpty)
            #expect(empty.description == "CommittableOffsetBatch()")
            // Returns at once: there is no consumer to wait for.
            try await empty.commit()
            empty.commitAndForget()
        }
        // Merged into a batch, an empty batch adds no offset and no count: the consumer is
        // asked to commit exactly the other offsets, once, and nothing else.
        let fake = FakeOffsetCommitter()
        var batch = CommittableOffsetBatch([fake.offset(0, 4)])
        batch.add(CommittableOffsetBatch())
        #expect(batch.batchSize == 1)
        try await batch.commit()
        batch.commitAndForget()
        #expect(fake.calls == [.commit([p0: 5]), .forget([p0: 5])])
    }

    @Test func failedCommitIsRethrown() async throws {
        let failure = KafkaError(.commitTimeout, "not acknowledged")
        let fake = FakeOffsetCommitter(failure: failure)
        await #expect(throws: failure) { try await CommittableOffsetBatch([fake.offset(0, 0)]).commit() }
    }
}
