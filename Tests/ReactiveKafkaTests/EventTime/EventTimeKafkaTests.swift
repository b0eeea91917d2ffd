import Foundation
import ReactiveKafkaTestKit
import StreamKit
import Testing

@testable import ReactiveKafka

/// StreamKit's event-time operators on records read from the embedded cluster, timed by the
/// records' own timestamps.
@Suite(.serialized, .timeLimit(.minutes(2))) struct EventTimeKafkaTests {
    /// A minute boundary, so one-minute windows start here.
    static let base: Int64 = 1_700_000_040_000

    static func produce(_ kafka: EmbeddedKafka, _ records: [(topic: String, key: String, value: String, offset: Int64)])
        async throws
    {
        let producer = try KafkaProducer(
            ProducerSettings(keySerializer: .string, valueSerializer: .string).withBootstrapServers(
                kafka.bootstrapServers))
        for record in records {
            _ = try await producer.send(
                ProducerRecord(
                    topic: record.topic, partition: 0, key: record.key, value: record.value,
                    timestamp: KafkaTimestamp(milliseconds: base + record.offset)))
        }
        await producer.close()
    }

    static func source(_ kafka: EmbeddedKafka, _ topic: String) -> Source<
        KafkaConsumerSequence<ConsumerRecord<String, String>>, ConsumerControl
    > {
        let settings = ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
            .withBootstrapServers(kafka.bootstrapServers).withProperty("auto.offset.reset", "earliest")
        return Consumer.plainSource(settings, subscription: .assignment(TopicPartition(topic, 0)))
    }

    @Test func recordsOfSeveralTopicsMergeInTimestampOrder() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("logins", partitions: 1)
        try kafka.createTopic("payments", partitions: 1)
        // Each topic in timestamp order, the two interleaved in time; all of one topic written first.
        try await Self.produce(kafka, [0, 3_000, 4_000, 9_000].map { ("logins", "c", "login@\($0)", $0) })
        try await Self.produce(kafka, [1_000, 2_000, 5_000, 10_000].map { ("payments", "c", "payment@\($0)", $0) })
        let logins = Self.source(kafka, "logins")
        let payments = Self.source(kafka, "payments")
        var merged: [String] = []
        for try await record in Consumer.mergedByTimestamp([logins, payments], idleTimeout: nil) {
            merged.append(record.value)
            #expect(record.eventTime == EventTime(milliseconds: record.timestamp!.milliseconds))
            if merged.count == 7 { break } // the eighth waits for a login after 10,000 ms
        }
        await logins.materialized.shutdown()
        await payments.materialized.shutdown()
        #expect(
            merged == [
                "login@0", "payment@1000", "payment@2000", "login@3000", "login@4000", "payment@5000", "login@9000",
            ])
    }

    @Test func recordsAreCountedInOneMinuteWindowsByTheirTimestamps() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("spend", partitions: 1)
        try await Self.produce(
            kafka,
            [
                ("spend", "a", "10", 1_000), ("spend", "b", "5", 2_000), ("spend", "a", "7", 59_999),
                ("spend", "a", "3", 61_000), // closes [0, 60 s): the watermark is 61 s - 1 s
                ("spend", "b", "1", 500), // too late for a closed window: side output
                ("spend", "z", "0", 600_000), // moves the watermark past every other window
            ])
        let records = Self.source(kafka, "spend")
        var outputs: [String] = []
        for try await output in records.windowed(
            .tumbling(.seconds(60)), key: \.key, outOfOrderness: .seconds(1), aggregate: .sum { Int($0.value) ?? 0 }
        ) {
            switch output {
            case .window(let total):
                outputs.append(
                    "\(total.key) [\((total.window.start.milliseconds - Self.base) / 1000) s) \(total.value)")
            case .late(let record): outputs.append("late \(record.key) \(record.value)")
            }
            if outputs.count == 4 { break }
        }
        await records.materialized.shutdown()
        #expect(outputs == ["a [0 s) 17", "b [0 s) 5", "late b 1", "a [60 s) 3"])
    }

    @Test func aPatternIsFoundInRecordsByTheirTimestamps() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("activity", partitions: 1)
        try await Self.produce(
            kafka,
            [
                ("activity", "ann", "login:fr", 0), ("activity", "bob", "login:fr", 1_000),
                ("activity", "ann", "pay:5000", 60_000),
                ("activity", "bob", "pay:5000", 400_000), ("activity", "eve", "tick", 1_000_000),
            ])
        let takeover = EventPattern<ConsumerRecord<String, String>>
            .first("login") { $0.value.hasPrefix("login:") }
            .followedBy("large payment") { $0.value.hasPrefix("pay:") && (Int($0.value.dropFirst(4)) ?? 0) > 1_000 }
            .within(.seconds(300))
        let records = Self.source(kafka, "activity")
        var matches: [[String]] = []
        for try await output in records.matching(takeover, key: \.key) {
            if case .match(let match) = output { matches.append(match.events.map { "\($0.key) \($0.value)" }) }
            if matches.count == 1 { break }
        }
        await records.materialized.shutdown()
        // Bob paid more than 5 minutes after his login: only Ann matches.
        #expect(matches == [["ann login:fr", "ann pay:5000"]])
    }

    @Test func twoTopicsJoinByKeyWithinAWindowOfTheirTimestamps() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("orders", partitions: 1)
        try kafka.createTopic("shipments", partitions: 1)
        try await Self.produce(
            kafka, [("orders", "o1", "order", 0), ("orders", "o2", "order", 1_000), ("orders", "o3", "order", 2_000)])
        // o2 ships within a minute of its order, o1 four minutes after it, o3 not at all (o9 moves time on).
        try await Self.produce(
            kafka,
            [
                ("shipments", "o2", "shipped", 50_000), ("shipments", "o1", "shipped", 240_000),
                ("shipments", "o9", "shipped", 900_000),
            ])
        let orders = Self.source(kafka, "orders")
        let shipments = Self.source(kafka, "shipments")
        var pairs: [String] = []
        let joined = eventTimeJoin(
            orders, shipments, leftKey: \.key, rightKey: \.key, leftTime: \.eventTime, rightTime: \.eventTime,
            // An hour of out-of-orderness: however the two consumers' starts interleave, nothing is late.
            within: .seconds(60), outOfOrderness: .seconds(3600), idleTimeout: .milliseconds(500))
        for try await output in joined {
            if case .joined(let order, let shipment) = output {
                pairs.append("\(order.key) \(order.value) \(shipment.value)")
            }
            if case .late = output { pairs.append("late") }
            if pairs.count == 1 { break }
        }
        await orders.materialized.shutdown()
        await shipments.materialized.shutdown()
        #expect(pairs == ["o2 order shipped"])
    }
}
