import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Testing

/// A consumed record finds its topic and headers through the fetched batch it came from.
/// A batch holds records of several topics and partitions, and records outlive their stream:
/// each must still name its own topic and read its own headers.
@Suite(.serialized) struct RecordOriginTests {
    static let topics = ["origin-a", "origin-with-a-longer-name-b", "c"]

    @Test func recordsOfSeveralTopicsInOneBatchNameTheirOwnTopicEvenAfterTheStreamEnded() async throws {
        let kafka = try EmbeddedKafka()
        for topic in Self.topics { try kafka.createTopic(topic, partitions: 3) }
        let producerSettings = ProducerSettings(keySerializer: .string, valueSerializer: .string)
            .withBootstrapServers(kafka.bootstrapServers).withProperty("linger.ms", "5")
        // Interleaved, so that fetches return runs of every topic in one batch.
        let records = (0..<300).map { i in
            let topic = Self.topics[i % Self.topics.count]
            return ProducerRecord<String, String>(
                topic: topic, partition: Int32(i % 3), key: "k\(i)", value: "\(topic)/\(i)",
                headers: [KafkaHeader(key: "from", value: KafkaBytes(topic))])
        }
        try await Source.from(records).run(into: Producer.plainSink(producerSettings))

        let settings = ConsumerEndToEndTests.settings(kafka, group: "g-origin")
        let source = Consumer.plainSource(settings, subscription: .topics(Self.topics))
        var read: [ConsumerRecord<String, String>] = []
        for try await record in source {
            read.append(record)
            if read.count == records.count { break }
        }
        await source.materialized.shutdown()

        // Read after the consumer shut down: the batches are kept alive by the records alone.
        #expect(read.count == records.count)
        #expect(Set(read.map(\.topic)) == Set(Self.topics))
        for record in read {
            let writtenTopic = String(record.value.split(separator: "/")[0])
            #expect(record.topic == writtenTopic, "record \(record.value) named topic \(record.topic)")
            #expect(record.topicPartition == TopicPartition(writtenTopic, record.partition))
            #expect(record.headers == [KafkaHeader(key: "from", value: KafkaBytes(writtenTopic))])
        }
        let given = ConsumerRecord(
            topic: "given", partition: 1, offset: 2, key: "k", value: "v", headers: [KafkaHeader(key: "h", value: nil)])
        #expect(given.topic == "given")
        #expect(given.headers == [KafkaHeader(key: "h", value: nil)])
    }
}
