import ReactiveKafka
import ReactiveKafkaTestKit
import Testing

@Suite struct MetadataClientTests {
    @Test func answersTopicsPartitionsOffsetsAndCommits() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("meta", partitions: 3)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "meta", records: (0..<30).map { (nil, "m\($0)") },
            roundRobinOver: 3)
        let settings = ConsumerSettings().withBootstrapServers(kafka.bootstrapServers).withGroupId("g-meta")
        let client = try MetadataClient(settings)
        defer { client.close() }

        #expect(try await client.partitions(of: "meta") == [0, 1, 2])
        #expect(try await client.topics().contains(MetadataClient.Topic(name: "meta", partitions: [0, 1, 2])))
        let partitions = (0..<3).map { TopicPartition("meta", Int32($0)) }
        #expect(
            try await client.endOffsets(partitions) == Dictionary(uniqueKeysWithValues: partitions.map { ($0, 10) }))
        #expect(
            try await client.beginningOffsets(partitions)
                == Dictionary(uniqueKeysWithValues: partitions.map { ($0, 0) }))
        #expect(try await client.committedOffsets(partitions).isEmpty)
        // offsetsForTimes is not checked here: the mock cluster does not answer ListOffsets by timestamp.
    }

    @Test func unknownTopicAndClosedClientAreTypedErrors() async throws {
        let kafka = try EmbeddedKafka()
        let client = try MetadataClient(
            ConsumerSettings().withBootstrapServers(kafka.bootstrapServers), timeout: .seconds(2))
        // (The mock auto-creates unknown topics on a metadata request, so use an invalid name.)
        await #expect(throws: KafkaError.self) { try await client.partitions(of: "") }
        client.close()
        await #expect {
            try await client.topics()
        } throws: { ($0 as? KafkaError)?.kind == .shutDown }
    }

    /// Offsets of many partitions take one look-up each; together they are bounded by the
    /// client's one timeout, not by a timeout each (which made N partitions wait N × timeout).
    @Test func offsetsOfManyPartitionsShareOneTimeout() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("meta-slow", partitions: 16)
        let client = try MetadataClient(
            ConsumerSettings().withBootstrapServers(kafka.bootstrapServers), timeout: .seconds(2))
        defer { client.close() }
        #expect(try await client.partitions(of: "meta-slow").count == 16)
        // Every request now takes 600 ms: sixteen partitions one after the other need over 9 s
        // (measured with a timeout each: 8 partitions at 700 ms took 6 s).
        try kafka.setRoundTripTime(broker: 1, .milliseconds(600))
        let partitions = (0..<16).map { TopicPartition("meta-slow", Int32($0)) }
        let start = ContinuousClock.now
        do {
            let ends = try await client.endOffsets(partitions)
            #expect(ends.count == 16)
        } catch {
            // The expected answer: the look-ups ran out of the one timeout.
            #expect(error.kind == .kafka && error.message.contains("timeout"), "\(error)")
        }
        let elapsed = ContinuousClock.now - start
        // The 2 s timeout plus room for a loaded machine and the sanitizers' slowdown (3.8 s seen under TSan).
        #expect(
            elapsed < .seconds(6), "answered or failed within the 2 s timeout (and some scheduling), took \(elapsed)")
    }
}
