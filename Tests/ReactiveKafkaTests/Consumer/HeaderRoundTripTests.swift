import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Testing

/// Headers written by the producer come back, in order, through both source kinds.
@Suite(.serialized) struct HeaderRoundTripTests {
    @Test func headersSurviveProduceAndConsume() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("hdr", partitions: 1)
        let producerSettings = ProducerSettings(keySerializer: .string, valueSerializer: .string)
            .withBootstrapServers(kafka.bootstrapServers).withProperty("linger.ms", "1")
        let records = (0..<20).map { i in
            ProducerRecord<String, String>(
                topic: "hdr", key: "k\(i)", value: "v\(i)",
                headers: i % 2 == 0
                    ? [KafkaHeader(key: "trace", value: KafkaBytes("t\(i)")), KafkaHeader(key: "empty", value: nil)]
                    : [])
        }
        try await Source.from(records).run(into: Producer.plainSink(producerSettings))

        let settings = ConsumerEndToEndTests.settings(kafka, group: "g-hdr")
        let plain = Consumer.plainSource(settings, subscription: .topics("hdr"))
        var seen: [String: [KafkaHeader]] = [:]
        for try await record in plain {
            seen[record.value] = record.headers
            if seen.count == 20 { break }
        }
        await plain.materialized.shutdown()
        #expect(
            seen["v0"] == [KafkaHeader(key: "trace", value: KafkaBytes("t0")), KafkaHeader(key: "empty", value: nil)])
        #expect(seen["v1"] == [])
        #expect(seen["v18"]?.first?.value?.string == "t18")

        let bytes = Consumer.committableSource(
            ConsumerSettings().withBootstrapServers(kafka.bootstrapServers).withGroupId("g-hdr-bytes")
                .withProperty("auto.offset.reset", "earliest").withProperties(EmbeddedKafka.fastGroupProperties),
            subscription: .topics("hdr"))
        var count = 0
        for try await message in bytes {
            let even = message.record.offset % 2 == 0
            #expect(message.record.headers.count == (even ? 2 : 0))
            count += 1
            if count == 20 { break }
        }
        await bytes.materialized.shutdown()
    }
}
