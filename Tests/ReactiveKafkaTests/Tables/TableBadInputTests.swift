import ReactiveKafka
import ReactiveKafkaTestKit
import Testing

/// Records a table cannot deserialise: a typed error naming the record, or counted and skipped.
@Suite struct TableBadInputTests {
    typealias Support = TableTestSupport

    static func settings(_ kafka: TestCluster) -> ConsumerSettings<String, Int> {
        ConsumerSettings(
            keyDeserializer: .string,
            valueDeserializer: Deserializer { bytes in
                guard let text = bytes?.string, let number = Int(text) else {
                    throw DeserializationFailure("not a number: \(bytes?.string ?? "null")")
                }
                return number
            }
        )
        .withBootstrapServers(kafka.bootstrapServers)
        .withCloseTimeout(.seconds(5))
    }

    @Test func anUndeserialisableRecordFailsTheTableNamingTopicPartitionAndOffset() async throws {
        let kafka = try TestCluster()
        let topic = try kafka.createTopic("table-bad", partitions: 2)
        try await Support.send(
            kafka, topic: topic,
            [(key: "a", value: "1"), (key: "b", value: "2"), (key: "c", value: "three"), (key: "d", value: "4")],
            partition: 1)
        let table = try KafkaTable(topic: topic, settings: Self.settings(kafka))
        let error = try #require(try await Support.failure(of: table) as? KafkaTableError)
        #expect(error.kind == .deserialization)
        #expect(error.topic == topic)
        #expect(error.partition == 1)
        #expect(error.offset == 2)
        #expect(error.message.contains("partition 1 offset 2"))
        await #expect(throws: KafkaTableError.self) { try await table.ready() }
    }

    @Test func withTheSkipSettingBadRecordsAreCountedAndSkipped() async throws {
        let kafka = try TestCluster()
        let topic = try kafka.createTopic("table-skip", partitions: 1)
        try await Support.send(
            kafka, topic: topic,
            [(key: "a", value: "1"), (key: "b", value: "x"), (key: "a", value: "y"), (key: "c", value: "3")])
        let table = try KafkaTable(
            topic: topic, settings: Self.settings(kafka), options: KafkaTableOptions(onUndeserializable: .skip))
        let running = try await Support.start(table)
        #expect(table.skippedRecords == 2)
        #expect(table.snapshot() == ["a": 1, "c": 3])
        try await Support.stop(table, running)
    }

    @Test func badSettingsAreRejectedWithATypedError() throws {
        let kafka = try TestCluster()
        #expect(throws: KafkaTableError.self) {
            try KafkaTable(
                topic: "t", settings: Self.settings(kafka), options: KafkaTableOptions(scope: .partitionAligned))
        }
        #expect(throws: KafkaTableError.self) { try KafkaTable(topic: "bad topic!", settings: Self.settings(kafka)) }
        #expect(throws: KafkaTableError.self) {
            try KafkaTable(topic: "t", settings: Self.settings(kafka), options: KafkaTableOptions(maxBatchRecords: 0))
        }
    }
}
