import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Testing

/// The README's exactly-once example, verbatim apart from the cluster address, so it cannot rot.
@Suite struct TransactionalReadmeExampleTests {
    @Test func theReadmeExactlyOncePipelineWritesEveryRecordOnce() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("orders", partitions: 4)
        try kafka.createTopic("enriched", partitions: 4)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "orders",
            records: (0..<500).map { (key: "customer-\($0 % 10)", value: "order \($0)") })
        let bootstrapServers = kafka.bootstrapServers
        let consumerSettings = ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
            .withBootstrapServers(bootstrapServers)
            .withGroupId("enricher")
            .withProperty("auto.offset.reset", "earliest")
        let producerSettings = ProducerSettings(keySerializer: .string, valueSerializer: .string)
            .withBootstrapServers(bootstrapServers)

        // Watches the output as a read_committed reader (a transactional source reads that way).
        let output = Counter()
        let watcher = Transactional.source(consumerSettings.withGroupId("watcher"), subscription: .topics("enriched"))
        let watching = Task { for try await message in watcher { output.add(message.record.value) } }

        // README: begin
        let control =
            Transactional
            .source(consumerSettings, subscription: .topics("orders"))
            .map { message in
                ProducerMessage.single(
                    ProducerRecord(
                        topic: "enriched", key: message.record.key, value: message.record.value.uppercased()),
                    passThrough: message.partitionOffset)
            }
            .to(Transactional.sink(producerSettings, transactionalId: "enricher-1"))
            .start()
        // README: end

        // The README drains on SIGTERM; here, once the output is complete.
        try await output.waitFor(count: 500)
        try await control.drainAndShutdown()
        await watcher.materialized.shutdown()
        watching.cancel()
        #expect(output.total == 500, "each order written once")
    }
}
