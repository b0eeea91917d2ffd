import ReactiveKafka
import ReactiveKafkaTestKit
import Testing

/// The testkit's record, offset and message factories: what they build, how their offsets
/// commit, and how they refuse bad input.
@Suite struct ConsumerResultFactoryTests {
    @Test func aRecordCarriesEveryFieldGiven() throws {
        let record = try ConsumerResultFactory.record(
            topic: "orders", partition: 2, offset: 41, key: "k", value: 7,
            timestamp: KafkaTimestamp(milliseconds: 1_700_000_000_000), headers: [KafkaHeader(key: "h", value: "v")])
        #expect(record.topic == "orders")
        #expect(record.partition == 2)
        #expect(record.offset == 41)
        #expect(record.key == "k")
        #expect(record.value == 7)
        #expect(record.timestamp == KafkaTimestamp(milliseconds: 1_700_000_000_000))
        #expect(record.headers.map(\.key) == ["h"])
    }

    @Test func aCommittableMessageCommitsTheNextOffsetWithItsMetadataToItsCommitter() async throws {
        let committer = RecordingCommitter()
        let record = try ConsumerResultFactory.record(topic: "orders", partition: 1, offset: 9, key: "k", value: "v")
        let message = try ConsumerResultFactory.committableMessage(
            record, groupId: "billing", metadata: "m-9", committer: committer)
        #expect(message.record.value == "v")
        #expect(
            message.committableOffset.partitionOffset
                == PartitionOffset(groupId: "billing", topicPartition: TopicPartition("orders", 1), offset: 9))
        try await message.committableOffset.commit()
        #expect(
            committer.commits == [
                RecordingCommitter.Commit(
                    offsets: [TopicPartition("orders", 1): 10], metadata: [TopicPartition("orders", 1): "m-9"],
                    awaited: true)
            ])
    }

    @Test func offsetsBatchedAndSentWithoutWaitingAreRecordedAsSuch() throws {
        let committer = RecordingCommitter()
        var batch = CommittableOffsetBatch()
        for offset in [3, 5, 4] as [Int64] {
            batch.add(
                try ConsumerResultFactory.committableOffset(
                    topic: "t", partition: 0, offset: offset, committer: committer))
        }
        batch.add(
            try ConsumerResultFactory.committableOffset(topic: "t", partition: 1, offset: 0, committer: committer))
        batch.commitAndForget()
        #expect(committer.commits.map(\.offsets) == [[TopicPartition("t", 0): 6, TopicPartition("t", 1): 1]])
        #expect(committer.commits.map(\.awaited) == [false])
    }

    @Test func aTransactionalMessageCarriesItsGroupAndOffset() throws {
        let record = try ConsumerResultFactory.record(
            topic: "payments", partition: 3, offset: 100, key: "k", value: "v")
        let message = try ConsumerResultFactory.transactionalMessage(record, groupId: "ledger")
        #expect(message.record.offset == 100)
        #expect(
            message.partitionOffset.partitionOffset
                == PartitionOffset(groupId: "ledger", topicPartition: TopicPartition("payments", 3), offset: 100))
    }

    @Test func badInputIsATypedErrorSayingWhatIsWrong() throws {
        let committer = RecordingCommitter()
        let badTopic = #expect(throws: KafkaError.self) {
            try ConsumerResultFactory.record(topic: "no spaces allowed", offset: 0, key: "k", value: "v")
        }
        #expect(badTopic?.kind == .invalidConfiguration)
        #expect(badTopic?.message.contains("not a valid topic name") == true)
        let negativeOffset = #expect(throws: KafkaError.self) {
            try ConsumerResultFactory.committableOffset(topic: "t", offset: -1, committer: committer)
        }
        #expect(negativeOffset?.message.contains("offset -1 of t-0 is negative") == true)
        let negativePartition = #expect(throws: KafkaError.self) {
            try ConsumerResultFactory.record(topic: "t", partition: -2, offset: 0, key: "k", value: "v")
        }
        #expect(negativePartition?.message.contains("partition -2 of t is negative") == true)
        let record = try ConsumerResultFactory.record(topic: "t", offset: 0, key: "k", value: "v")
        let noGroup = #expect(throws: KafkaError.self) {
            try ConsumerResultFactory.transactionalMessage(record, groupId: "")
        }
        #expect(noGroup?.kind == .invalidConfiguration)
        #expect(committer.commits.isEmpty)
    }
}
