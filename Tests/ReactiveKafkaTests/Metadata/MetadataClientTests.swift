import ReactiveKafka
import ReactiveKafkaTestKit
import Testing

@Suite struct MetadataClientTests {
    @Test func answersTopicsPartitionsOffsetsAndCommits() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("meta", partitions: 3)
        try TestData.produce(bootstrapServers: kafka.bootstrapServers, topic: "meta", records: (0..<30).map { (nil, "m\($0)") }, roundRobinOver: 3)
        let settings = ConsumerSettings().withBootstrapServers(kafka.bootstrapServers).withGroupId("g-meta")
        let client = try MetadataClient(settings)
        defer { client.close() }

        #expect(try await client.partitions(of: "meta") == [0, 1, 2])
        #expect(try await client.topics().contains(MetadataClient.Topic(name: "meta", partitions: [0, 1, 2])))
        let partitions = (0..<3).map { TopicPartition("meta", Int32($0)) }
        #expect(try await client.endOffsets(partitions) == Dictionary(uniqueKeysWithValues: partitions.map { ($0, 10) }))
        #expect(try await client.beginningOffsets(partitions) == Dictionary(uniqueKeysWithValues: partitions.map { ($0, 0) }))
        #expect(try await client.committedOffsets(partitions).isEmpty)
        // offsetsForTimes is not checked here: the mock cluster does not answer ListOffsets by timestamp.
    }

    @Test func unknownTopicAndClosedClientAreTypedErrors() async throws {
        let kafka = try EmbeddedKafka()
        let client = try MetadataClient(ConsumerSettings().withBootstrapServers(kafka.bootstrapServers), timeout: .seconds(2))
        // (The mock auto-creates unknown topics on a metadata request, so use an invalid name.)
        await #expect(throws: KafkaError.self) { try await client.partitions(of: "") }
        client.close()
        await #expect {
            try await client.topics()
        } throws: { ($0 as? KafkaError)?.kind == .shutDown }
    }
}
