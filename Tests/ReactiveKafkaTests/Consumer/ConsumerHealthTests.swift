import Foundation
import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Synchronization
import Testing

/// ``ConsumerControl/health`` and ``ConsumerControl/healthChanges()`` through each state, on
/// the embedded cluster.
@Suite(.serialized) struct ConsumerHealthTests {
    static func settings(_ kafka: EmbeddedKafka, group: String) -> ConsumerSettings<String, String> {
        ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
            .withBootstrapServers(kafka.bootstrapServers)
            .withGroupId(group)
            .withProperty("auto.offset.reset", "earliest")
            .withProperties(EmbeddedKafka.fastGroupProperties)
            .withStallThreshold(.seconds(1))
    }

    /// Collects the health changes a control reports, in order.
    final class HealthLog: Sendable {
        final class Seen: Sendable {
            let values = Mutex<[ConsumerHealth]>([])
        }
        private let seen = Seen()
        let task: Task<Void, Never>

        init(_ changes: AsyncStream<ConsumerHealth>) {
            let seen = self.seen
            task = Task { for await health in changes { seen.values.withLock { $0.append(health) } } }
        }

        var values: [ConsumerHealth] { seen.values.withLock { $0 } }

        /// Waits (bounded) until `health` was reported after the first `index` reports.
        func waitFor(_ health: ConsumerHealth, after index: Int = 0, within limit: Duration = .seconds(20)) async throws
            -> Bool
        {
            let deadline = ContinuousClock.now + limit
            while !values.dropFirst(index).contains(health) {
                if ContinuousClock.now >= deadline { return false }
                try await Task.sleep(for: .milliseconds(20))
            }
            return true
        }
    }

    @Test func aConsumerGoesThroughStartingConsumingStalledRebalancingAndStopped() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("h-states", partitions: 2)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "h-states", records: (0..<400).map { (nil, "h\($0)") },
            roundRobinOver: 2)
        let source = Consumer.plainSource(
            Self.settings(kafka, group: "g-h-states").withMaxBatchSize(10), subscription: .topics("h-states"))
        let control = source.materialized
        #expect(control.health == .starting, "not pulled yet")
        let log = HealthLog(control.healthChanges())
        var iterator = source.makeAsyncIterator()
        for _ in 0..<10 { _ = try await iterator.next() }
        #expect(try await log.waitFor(.consuming))
        #expect(control.health.isReady)
        // The stream stops pulling while records are buffered: stalled after the threshold.
        #expect(try await log.waitFor(.stalled))
        #expect(control.health == .stalled && !control.health.isLive)
        // Taking records again is progress.
        let stalledAt = log.values.count
        for _ in 0..<20 { _ = try await iterator.next() }
        #expect(try await log.waitFor(.consuming, after: stalledAt, within: .seconds(5)))
        // A second member joins: the group rebalances.
        let beforeJoin = log.values.count
        let other = Consumer.plainSource(Self.settings(kafka, group: "g-h-states"), subscription: .topics("h-states"))
        let otherTask = Task { for try await _ in other {} }
        #expect(try await log.waitFor(.rebalancing, after: beforeJoin))
        // Keep reading until the member is assigned again (eager: the callback follows the join).
        let deadline = ContinuousClock.now + .seconds(20)
        while control.health != .consuming, ContinuousClock.now < deadline {
            _ = try await iterator.next()
        }
        #expect(control.health == .consuming)
        await control.shutdown()
        #expect(try await log.waitFor(.stopped))
        await log.task.value // the stream finishes once the consumer closed
        #expect(log.values.first == .starting)
        #expect(log.values.last == .stopped)
        otherTask.cancel()
        await other.materialized.shutdown()
    }

    @Test func aFailedConsumerReportsItsError() async throws {
        // Nothing listens there: the stream fails after brokerUnreachableTimeout.
        let settings = ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
            .withBootstrapServers("127.0.0.1:1").withGroupId("g-h-failed")
            .withBrokerUnreachableTimeout(.seconds(1))
        let source = Consumer.plainSource(settings, subscription: .topics("h-failed"))
        let log = HealthLog(source.materialized.healthChanges())
        await #expect(throws: KafkaError.self) { for try await _ in source {} }
        await log.task.value
        guard case .failed(let error) = log.values.last else {
            Issue.record("expected failed, got \(log.values)")
            return
        }
        #expect(error.kind == .brokerUnreachable)
        #expect(source.materialized.health == .failed(error))
    }

    @Test func settingsRefusedAtStartAreAFailedHealth() async throws {
        let settings = ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
            .withBootstrapServers("127.0.0.1:1").withGroupId("g-h-bad").withProperty("no.such.property", "1")
        let source = Consumer.plainSource(settings, subscription: .topics("h-bad"))
        await #expect(throws: KafkaError.self) { for try await _ in source {} }
        guard case .failed(let error) = source.materialized.health else {
            Issue.record("expected failed, got \(source.materialized.health)")
            return
        }
        #expect(error.kind == .invalidConfiguration)
    }

    @Test func aSourceStoppedBeforeItStartedIsStopped() {
        let source = Consumer.plainSource(
            ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string).withGroupId("g"),
            subscription: .topics("t"))
        source.materialized.stop()
        #expect(source.materialized.health == .stopped)
    }
}
