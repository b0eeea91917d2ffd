import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Testing

/// `Deserializer.bytes` and `.optionalBytes` hand fetched bytes on without calling a closure;
/// what a missing key or value reads as must not change, and a custom deserialiser of the
/// same type must still be called.
@Suite(.serialized) struct BytesDeserializerTests {
    static let written: [(key: String?, value: String?)] = [
        ("k0", "v0"), (nil, "no key"), ("no value", nil), (nil, nil), ("", ""),
    ]

    static func consume<K: Sendable, V: Sendable>(
        _ kafka: EmbeddedKafka, group: String, _ keys: Deserializer<K>, _ values: Deserializer<V>
    ) async throws -> [(K, V)] {
        let settings = ConsumerSettings(keyDeserializer: keys, valueDeserializer: values)
            .withBootstrapServers(kafka.bootstrapServers).withGroupId(group)
            .withProperty("auto.offset.reset", "earliest").withProperties(EmbeddedKafka.fastGroupProperties)
        let source = Consumer.plainSource(settings, subscription: .topics("bytes-in"))
        var read: [(K, V)] = []
        for try await record in source {
            read.append((record.key, record.value))
            if read.count == written.count { break }
        }
        await source.materialized.shutdown()
        return read
    }

    @Test func missingKeysAndValuesReadAsEmptyOrNilAndCustomDeserialisersAreCalled() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("bytes-in", partitions: 1)
        let producerSettings = ProducerSettings(keySerializer: .string, valueSerializer: .string)
            .withBootstrapServers(kafka.bootstrapServers).withProperty("linger.ms", "1")
        let records = Self.written.map {
            ProducerRecord<String, String>(topic: "bytes-in", partition: 0, key: $0.key, value: $0.value)
        }
        try await Source.from(records).run(into: Producer.plainSink(producerSettings))

        let empty = try await Self.consume(
            kafka, group: "g-bytes", Deserializer<KafkaBytes>.bytes, Deserializer<KafkaBytes>.bytes)
        #expect(empty.map(\.0.string) == Self.written.map { $0.key ?? "" })
        #expect(empty.map(\.1.string) == Self.written.map { $0.value ?? "" })

        let optional = try await Self.consume(
            kafka, group: "g-optional", Deserializer<KafkaBytes?>.optionalBytes, Deserializer<KafkaBytes?>.optionalBytes
        )
        #expect(optional.map { $0.0?.string } == Self.written.map(\.key))
        #expect(optional.map { $0.1?.string } == Self.written.map(\.value))

        let upper = Deserializer<KafkaBytes> { KafkaBytes(($0?.string ?? "-").uppercased()) }
        let custom = try await Self.consume(kafka, group: "g-custom", upper, upper)
        #expect(custom.map(\.1.string) == ["V0", "NO KEY", "-", "-", ""])
    }
}
