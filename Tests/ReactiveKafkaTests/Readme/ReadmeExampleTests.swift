import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Testing

/// The README's usage example, verbatim apart from the cluster address, so it cannot rot.
@Suite struct ReadmeExampleTests {
    @Test func theReadmePipelineConsumesTransformsProducesAndCommits() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("orders", partitions: 4)
        try kafka.createTopic("enriched", partitions: 4)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "orders",
            records: (0..<500).map { (key: "customer-\($0 % 10)", value: "order \($0)") })
        let bootstrapServers = kafka.bootstrapServers

        // README: begin
        let consumerSettings = ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
            .withBootstrapServers(bootstrapServers)
            .withGroupId("enricher")
            .withProperty("auto.offset.reset", "earliest")
        let producerSettings = ProducerSettings(keySerializer: .string, valueSerializer: .string)
            .withBootstrapServers(bootstrapServers)

        let control =
            Consumer
            .committableSource(consumerSettings, subscription: .topics("orders"))
            .map { message in
                ProducerMessage.single(
                    ProducerRecord(
                        topic: "enriched", key: message.record.key, value: message.record.value.uppercased()),
                    passThrough: message.committableOffset)
            }
            .via(Producer.flexiFlow(producerSettings))
            .map(\.passThrough)
            .to(Committer.sink(CommitterSettings()))
            .start()
        // README: end

        // Wait until everything consumed is committed, then drain as on SIGTERM.
        var committed = 0
        for _ in 0..<200 where committed < 500 {
            try await Task.sleep(for: .milliseconds(100))
            let offsets = try await TestData.committedOffsets(
                bootstrapServers: bootstrapServers, group: "enricher", topic: "orders", partitions: 4)
            committed = Int(offsets.values.reduce(0, +))
        }
        try await control.drainAndShutdown()
        #expect(committed == 500)
        let output = try await RawKafka.readAll(topic: "enriched", bootstrapServers: bootstrapServers)
        #expect(
            Set(output.compactMap { $0.value.map { String(decoding: $0, as: UTF8.self) } })
                == Set((0..<500).map { "ORDER \($0)" }))
    }
}
