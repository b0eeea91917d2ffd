import Foundation
import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Synchronization
import Testing

/// Consumer sources and the committer against the embedded cluster.
@Suite(.serialized) struct ConsumerEndToEndTests {
    static func settings(_ kafka: EmbeddedKafka, group: String) -> ConsumerSettings<String, String> {
        ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
            .withBootstrapServers(kafka.bootstrapServers)
            .withGroupId(group)
            .withProperty("auto.offset.reset", "earliest")
            .withProperties(EmbeddedKafka.fastGroupProperties)
    }

    @Test func plainSourceReadsEveryRecordInPartitionOrder() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("plain", partitions: 4)
        let input = (0..<2000).map { (key: "k\($0 % 7)", value: "v\($0)") }
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "plain", records: input, roundRobinOver: 4)

        let source = Consumer.plainSource(Self.settings(kafka, group: "g-plain"), subscription: .topics("plain"))
        var seen: [Int32: [Int64]] = [:]
        var values = Set<String>()
        for try await record in source {
            seen[record.partition, default: []].append(record.offset)
            values.insert(record.value)
            if values.count == input.count { break }
        }
        await source.materialized.shutdown()
        #expect(values == Set(input.map(\.value)))
        for (_, offsets) in seen { #expect(offsets == offsets.sorted()) }
        #expect(source.materialized.isShutdown)
    }

    @Test func committableSourceCommitsProcessedOffsetsAndSkipsNothing() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("orders", partitions: 3)
        let input = (0..<3000).map { (key: nil as String?, value: "o\($0)") }
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "orders", records: input, roundRobinOver: 3)

        let counter = Counter()
        let control = Consumer.committableSource(
            Self.settings(kafka, group: "g-orders"), subscription: .topics("orders")
        )
        .map { message in
            counter.add(message.record.value)
            return message.committableOffset
        }
        .to(Committer.sink(CommitterSettings().withMaxBatch(100)))
        .start()
        try await counter.waitFor(count: input.count)
        try await control.drainAndShutdown()
        #expect(control.isShutdown)
        let committed = try await TestData.committedOffsets(
            bootstrapServers: kafka.bootstrapServers, group: "g-orders", topic: "orders", partitions: 3)
        #expect(committed == [0: 1000, 1: 1000, 2: 1000])
    }

    @Test func plainSourceWithAutoCommitCommitsWhatItRead() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("auto", partitions: 2)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "auto", records: (0..<200).map { (nil, "a\($0)") },
            roundRobinOver: 2)
        let settings = Self.settings(kafka, group: "g-auto")
            .withProperty("enable.auto.commit", "true").withProperty("auto.commit.interval.ms", "100")
        let source = Consumer.plainSource(settings, subscription: .topics("auto"))
        var count = 0
        // Stopped, not broken out of: the source completes once the iterator comes back, so the
        // last batch counts as emitted (a break leaves the batch in hand unstored: redelivered).
        for try await _ in source {
            count += 1
            if count == 200 { source.materialized.stop() }
        }
        await source.materialized.shutdown() // librdkafka commits stored offsets on close
        #expect(
            try await TestData.committedOffsets(
                bootstrapServers: kafka.bootstrapServers, group: "g-auto", topic: "auto", partitions: 2) == [
                    0: 100, 1: 100,
                ])
    }

    @Test func undeserialisableRecordFailsTheStreamWithATypedError() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("json", partitions: 1)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "json", records: [(nil, #"{"id":1}"#), (nil, "not json")])
        struct Event: Codable, Sendable { var id: Int }
        let settings = ConsumerSettings(keyDeserializer: .optionalString, valueDeserializer: .json(Event.self))
            .withBootstrapServers(kafka.bootstrapServers).withGroupId("g-json")
            .withProperty("auto.offset.reset", "earliest").withProperties(EmbeddedKafka.fastGroupProperties)
        let source = Consumer.plainSource(settings, subscription: .topics("json"))
        var ids: [Int] = []
        await #expect {
            for try await record in source { ids.append(record.value.id) }
        } throws: { error in
            guard let e = error as? KafkaError else { return false }
            return e.kind == .deserialization && e.message.contains("topic json partition 0 offset 1")
        }
        #expect(ids == [1])
        await source.materialized.shutdown()
    }

    @Test func badPropertyFailsTheStreamWithATypedError() async throws {
        let settings = ConsumerSettings().withBootstrapServers("127.0.0.1:1").withGroupId("g").withProperty(
            "fetch.wait.max.ms", "banana")
        let source = Consumer.plainSource(settings, subscription: .topics("t"))
        await #expect {
            for try await _ in source {}
        } throws: { error in
            (error as? KafkaError)?.kind == .invalidConfiguration && "\(error)".contains("fetch.wait.max.ms")
        }
    }

    @Test func aSourceRunsOnce() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("once", partitions: 1)
        let source = Consumer.plainSource(Self.settings(kafka, group: "g-once"), subscription: .topics("once"))
        source.materialized.stop()
        // Stopped before it started: the first run completes at once…
        for try await _ in source { Issue.record("a stopped source emitted a record") }
        // …and a second run of the same source is refused.
        await #expect {
            for try await _ in source {}
        } throws: { error in
            (error as? KafkaError)?.kind == .illegalState
        }
        #expect(source.materialized.isShutdown)
    }
}

/// Counts distinct values seen and lets a test wait for a count without polling.
final class Counter: Sendable {
    private let state = Mutex<(values: Set<String>, total: Int)>(([], 0))
    private let gate = CountGate()

    func add(_ value: String) {
        let count = state.withLock { s -> Int in
            s.values.insert(value)
            s.total += 1
            return s.values.count
        }
        gate.reached(count)
    }

    var distinct: Int { state.withLock { $0.values.count } }
    var total: Int { state.withLock { $0.total } }

    /// Suspends until `count` distinct values were added, or records an issue after `timeout`.
    func waitFor(count: Int, timeout: Duration = .seconds(30)) async throws {
        if await !gate.wait(for: count, timeout: timeout) {
            Issue.record("timed out waiting for \(count) records, saw \(distinct)")
        }
    }
}

@Suite(.serialized) struct TopicPatternTests {
    @Test func aPatternSubscriptionReadsEveryMatchingTopicAndNothingElse() async throws {
        let kafka = try EmbeddedKafka()
        for topic in ["orders-eu", "orders-us", "payments"] { try kafka.createTopic(topic, partitions: 2) }
        for topic in ["orders-eu", "orders-us", "payments"] {
            try await TestData.produce(
                bootstrapServers: kafka.bootstrapServers, topic: topic,
                records: (0..<50).map { (nil, "\(topic)-\($0)") })
        }
        let source = Consumer.plainSource(
            ConsumerEndToEndTests.settings(kafka, group: "g-pattern"), subscription: .topicPattern("^orders-.*"))
        var byTopic: [String: Int] = [:]
        for try await record in source {
            byTopic[record.topic, default: 0] += 1
            if byTopic.values.reduce(0, +) == 100 { break }
        }
        await source.materialized.shutdown()
        #expect(byTopic == ["orders-eu": 50, "orders-us": 50])
    }

    @Test func anInvalidPatternIsATypedError() async throws {
        let source = Consumer.plainSource(
            ConsumerSettings().withBootstrapServers("127.0.0.1:1").withGroupId("g"),
            subscription: .topicPattern("^orders-[unclosed"))
        await #expect {
            for try await _ in source {}
        } throws: { error in
            (error as? KafkaError)?.kind == .invalidConfiguration && "\(error)".contains("regular expression")
        }
    }
}
