import CRdKafka
import ReactiveKafkaTestKit
import StreamKit
import Synchronization
import Testing

@testable import ReactiveKafka

/// A flexiFlow's collected records are produced once the first of them has waited
/// ``ProducerFlowBatch/maxHold``, even while the upstream keeps the pump busy and the batch is
/// far from full: before, they waited for 1,024 records' work or for the upstream to run dry.
@Suite struct ProducerFlowBatchHoldTests {
    static func batch(holding count: Int, since: ContinuousClock.Instant) -> ProducerFlowBatch {
        let batch = ProducerFlowBatch(receiver: 1, token: { UInt64($0) }, refused: { _, _, _ in })
        for position in 0..<count {
            batch.entries.append(
                .init(position: position, partition: 0, keyOffset: 0, keyCount: -1, valueOffset: 0, valueCount: -1))
        }
        batch.collectingSince = since
        return batch
    }

    @Test func aBatchWhoseFirstRecordWaitedLongEnoughIsDueAtTheNextLookAtTheClock() {
        let interval = ProducerFlowBatch.holdCheckInterval
        let old = ContinuousClock.now - ProducerFlowBatch.maxHold - .milliseconds(1)
        #expect(Self.batch(holding: interval, since: old).isDue)
        #expect(Self.batch(holding: 2 * interval, since: old).isDue)
        // Between two looks the clock is not read: the batch waits for the next one.
        #expect(!Self.batch(holding: interval + 1, since: old).isDue)
    }

    @Test func aYoungBatchIsDueOnlyWhenFull() {
        let now = ContinuousClock.now + .seconds(60) // its first record "arrives" in a minute: never old here
        #expect(!Self.batch(holding: ProducerFlowBatch.holdCheckInterval, since: now).isDue)
        #expect(!Self.batch(holding: ProducerFlowBatch.maxRecords - 1, since: now).isDue)
        #expect(Self.batch(holding: ProducerFlowBatch.maxRecords, since: now).isDue)
    }

    /// A serialiser that costs the pump 5 ms a record (after the first `fast`), until a result
    /// has come back. Serialising happens in the pump while it owns its batch; the poll thread
    /// can take the batch only in the instant of a pull. Without the hold bound the first result
    /// came after 716 to 1,100 records (three runs: the poll thread's chance look, or the batch
    /// full); with it, after the first look at the clock (48 records) and one round trip. The
    /// producer is connected and knows the topic first, so that round trip is short even when
    /// the whole suite starts at once.
    @Test func aSlowStageInThePumpDoesNotHoldCollectedRecordsUntilTheBatchIsFull() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("hold-out", partitions: 1)
        let resultSeen = Atomic<Bool>(false)
        let serialized = Atomic<Int>(0)
        let fast = 40
        let slowValues = Serializer<String> { value in
            // Only the flow's records (numbered), not the warm-up record.
            if let n = Int(value) {
                serialized.store(n + 1, ordering: .relaxed)
                if n >= fast, !resultSeen.load(ordering: .acquiring) {
                    let clock = ContinuousClock()
                    let end = clock.now + .milliseconds(5)
                    while clock.now < end, !resultSeen.load(ordering: .acquiring) {}
                }
            }
            return .utf8(value)
        }
        let settings = ProducerSettings(keySerializer: .string, valueSerializer: slowValues)
            .withBootstrapServers(kafka.bootstrapServers)
            .withProperty("linger.ms", "2")
            .withCloseTimeout(.seconds(5))
        let producer = try KafkaProducer(settings)
        _ = try await producer.send(ProducerRecord(topic: "hold-out", partition: 0, value: "warm-up"))
        let messages = (0..<1_100).map {
            ProducerMessage<String, String, Int>.single(
                ProducerRecord(topic: "hold-out", partition: 0, value: "\($0)"), passThrough: $0)
        }
        var results = 0
        var serializedAtFirstResult = -1
        for try await _ in Source.from(messages).via(Producer.flexiFlow(settings, producer: producer)) {
            if results == 0 {
                serializedAtFirstResult = serialized.load(ordering: .relaxed)
                resultSeen.store(true, ordering: .releasing)
            }
            results += 1
        }
        await producer.close()
        #expect(results == 1_100)
        #expect(
            serializedAtFirstResult < ProducerFlowBatch.maxRecords,
            "the first result came only after \(serializedAtFirstResult) records were serialised")
    }
}
