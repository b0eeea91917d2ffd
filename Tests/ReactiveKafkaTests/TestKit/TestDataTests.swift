import ReactiveKafka
import ReactiveKafkaTestKit
import Testing

/// ``TestData`` refuses bad input with typed errors, and its async calls run on threads of
/// their own: they leave the cooperative pool free and end at once when cancelled.
@Suite struct TestDataTests {
    /// Nothing listens here: a producer keeps retrying, and its flush would wait its full 30 s.
    static let unreachable = "127.0.0.1:1"

    @Test func anInvalidTopicNameIsATypedErrorNotACrash() async throws {
        let sync = #expect(throws: KafkaError.self) {
            try TestData.produce(bootstrapServers: Self.unreachable, topic: "bad topic!", records: [(nil, "v")])
        }
        #expect(sync?.kind == .invalidConfiguration)
        #expect(sync?.message.contains("\"bad topic!\" is not a valid topic name") == true)
        let async = await #expect(throws: KafkaError.self) {
            try await TestData.produce(
                bootstrapServers: Self.unreachable, topic: String(repeating: "x", count: 250), records: [(nil, "v")])
        }
        #expect(async?.kind == .invalidConfiguration)
        let offsets = await #expect(throws: KafkaError.self) {
            try await TestData.committedOffsets(
                bootstrapServers: Self.unreachable, group: "g", topic: "", partitions: 1)
        }
        #expect(offsets?.kind == .invalidConfiguration)
    }

    @Test func impossiblePartitionsAndGroupsAreTypedErrors() async throws {
        let negative = await #expect(throws: KafkaError.self) {
            try await TestData.produce(
                bootstrapServers: Self.unreachable, topic: "t", records: [(nil, "v")], partition: -1)
        }
        #expect(negative?.message.contains("partition -1 of t is negative") == true)
        let none = await #expect(throws: KafkaError.self) {
            try await TestData.produce(
                bootstrapServers: Self.unreachable, topic: "t", records: [(nil, "v")], roundRobinOver: 0)
        }
        #expect(none?.message.contains("roundRobinOver needs at least 1 partition, got 0") == true)
        let noGroup = #expect(throws: KafkaError.self) {
            try TestData.committedOffsets(bootstrapServers: Self.unreachable, group: "", topic: "t", partitions: 1)
        }
        #expect(noGroup?.kind == .invalidConfiguration)
        let noPartitions = await #expect(throws: KafkaError.self) {
            try await TestData.committedOffsets(
                bootstrapServers: Self.unreachable, group: "g", topic: "t", partitions: 0)
        }
        #expect(noPartitions?.kind == .invalidConfiguration)
    }

    /// More blocked producers than the cooperative pool has threads: were they on the pool,
    /// the probe task queued after them could not run until their flushes gave up (30 s).
    @Test func blockedProducersLeaveThePoolFreeAndEndWhenCancelled() async throws {
        let producers = (0..<8).map { i in
            Task {
                try await TestData.produce(
                    bootstrapServers: Self.unreachable, topic: "nowhere", records: [(nil, "v\(i)")])
            }
        }
        let probe = Task { 42 }
        #expect(try await withTimeout(seconds: 5) { await probe.value } == 42)
        for producer in producers { producer.cancel() }
        for producer in producers {
            let error = await #expect(throws: KafkaError.self) { try await valueWithin(producer, seconds: 5) }
            #expect(error?.kind == .cancelled)
        }
    }
}
