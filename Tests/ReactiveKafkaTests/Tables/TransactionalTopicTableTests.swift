import ReactiveKafka
import ReactiveKafkaTestKit
import Testing

/// A topic written in transactions ends with a commit marker, which no record reaches: the
/// restore must still complete (the consumer reports the partition's end). librdkafka's mock
/// cluster writes no markers, so this runs against a real broker (`make test-external`).
@Suite(
    .enabled(
        if: TestClusterMode.isExternal, "the mock cluster writes no transaction markers: run with make test-external"))
struct TransactionalTopicTableTests {
    typealias Support = TableTestSupport

    @Test(arguments: [false, true])
    func aTableOfATopicEndingWithATransactionMarkerBecomesReady(partitionAligned: Bool) async throws {
        let kafka = try TestCluster()
        let topic = try kafka.createTopic("table-transactional", partitions: 2)
        let producer = try TransactionalProducer(
            ProducerSettings(keySerializer: .string, valueSerializer: .string).withBootstrapServers(
                kafka.bootstrapServers),
            transactionalId: kafka.name("table-transactional-writer"))
        try await producer.transaction { transaction in
            for i in 0..<6 {
                try await transaction.send(
                    ProducerRecord(topic: topic, partition: Int32(i % 2), key: "k\(i)", value: "v\(i)"))
            }
        }
        await producer.close()
        let metadata = try MetadataClient(Support.settings(kafka))
        let ends = try await metadata.endOffsets([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        metadata.close()
        // Three records and a commit marker each.
        #expect(ends.values.allSatisfy { $0 == 4 })

        var settings = Support.settings(kafka).withProperty("isolation.level", "read_committed")
        if partitionAligned { settings = settings.withGroupId(kafka.name("table-transactional-group")) }
        let table = try KafkaTable(
            topic: topic, settings: settings,
            options: KafkaTableOptions(scope: partitionAligned ? .partitionAligned : .global))
        let running = try await Support.start(table)
        #expect(table.count == 6)
        #expect(table["k5"] == "v5")
        try await Support.stop(table, running)
    }
}
