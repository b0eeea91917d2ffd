import Foundation
import ReactiveKafkaTestKit
import StreamKit
import Synchronization
import Testing

@testable import ReactiveKafka

/// A flexiFlow pump that waits for its Kafka source with records collected has the producer's
/// poll thread produce them when the source runs out of records (``UpstreamWait``), not at the
/// poll thread's next look up to a millisecond later. How much latency that saves is
/// `rkafka bench --scenario latency`'s to measure; these tests show the wake happens where it
/// should and nowhere else.
@Suite(.serialized) struct ParkedBatchWakeTests {
    typealias Message = ProducerMessage<String, String, Int>

    /// Relays `wake-in` to `wake-out` through `plainSource → map → flexiFlow`,
    /// feeding one record at a time and waiting for its result before the next, so that the
    /// source waits for each while the pump holds the previous one's batch.
    @Test func aKafkaSourceThatRunsOutOfRecordsWakesThePollThreadForTheParkedBatch() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("wake-in", partitions: 1)
        try kafka.createTopic("wake-out", partitions: 1)
        let settings = kafka.producerSettings()
        let producer = try KafkaProducer(settings)
        let consumer = ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
            .withBootstrapServers(kafka.bootstrapServers)
            .withGroupId("wake-g")
            .withProperty("auto.offset.reset", "earliest")
            .withProperties(EmbeddedKafka.fastGroupProperties)
        let relayed = Counter()
        let relay = Task {
            let flowing = Consumer.plainSource(consumer, subscription: .topics("wake-in"))
                .map { record -> Message in
                    .single(
                        ProducerRecord(topic: "wake-out", key: record.key, value: record.value),
                        passThrough: Int(record.value ?? "") ?? -1)
                }
                .via(Producer.flexiFlow(settings, producer: producer))
            for try await result in flowing { relayed.add("\(result.passThrough)") }
        }
        for i in 0..<5 {
            try await TestData.produce(
                bootstrapServers: kafka.bootstrapServers, topic: "wake-in", records: [(key: "k", value: "\(i)")])
            try await relayed.waitFor(count: i + 1)
        }
        #expect(relayed.total == 5)
        relay.cancel()
        _ = try? await relay.value
        #expect(
            producer.engine.parkedPumpWakes.load(ordering: .relaxed) >= 1,
            "the source waited for each record while the pump held one: it woke the poll thread")
        await producer.close()
    }

    /// An upstream that is not a Kafka source says nothing when it waits: the pump's batch goes
    /// at the poll thread's next look, as before.
    @Test func anUpstreamThatIsNotAKafkaSourceNeverWakesThePollThread() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("wake-plain", partitions: 1)
        let settings = kafka.producerSettings()
        let producer = try KafkaProducer(settings)
        let (upstream, feed) = AsyncStream<Message>.makeStream()
        let relayed = Counter()
        let flow = Task {
            for try await result in Source(upstream).via(Producer.flexiFlow(settings, producer: producer)) {
                relayed.add("\(result.passThrough)")
            }
        }
        for i in 0..<5 {
            feed.yield(.single(ProducerRecord(topic: "wake-plain", value: "\(i)"), passThrough: i))
            try await relayed.waitFor(count: i + 1)
        }
        #expect(relayed.total == 5)
        feed.finish()
        _ = try? await flow.value
        #expect(producer.engine.parkedPumpWakes.load(ordering: .relaxed) == 0)
        await producer.close()
    }
}
