import Foundation
import MetricsTestKit
import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Testing

/// The consumer's swift-metrics, read from a `TestMetrics` factory of the test's own
/// (settings' ``KafkaMetricsSettings/factory``), after runs whose figures are known.
@Suite(.serialized) struct ConsumerMetricsTests {
    static func settings(_ kafka: EmbeddedKafka, group: String, metrics: TestMetrics) -> ConsumerSettings<
        String, String
    > {
        var metricsSettings = KafkaMetricsSettings()
        metricsSettings.factory = metrics
        return ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
            .withBootstrapServers(kafka.bootstrapServers)
            .withGroupId(group)
            .withProperty("auto.offset.reset", "earliest")
            .withProperties(EmbeddedKafka.fastGroupProperties)
            .withMetrics(metricsSettings)
    }

    /// Waits (bounded) until `condition` holds; false if it never did.
    static func eventually(within limit: Duration, _ condition: () -> Bool) async throws -> Bool {
        try await Eventually.within(limit, condition)
    }

    static func gauge(_ metrics: TestMetrics, _ label: String, topic: String, partition: Int32) -> Double? {
        metrics.recorders(label: label).first { recorder in
            recorder.dimensions.contains { $0 == (MessagingMetric.destination, topic) }
                && recorder.dimensions.contains { $0 == (MessagingMetric.partition, String(partition)) }
        }?.lastValue
    }

    @Test func recordsAndBytesConsumedAreCountedPerPartition() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("m-count", partitions: 2)
        // 600 records of 10-byte values, no keys: 300 per partition, 3,000 bytes each.
        let input = (0..<600).map { (key: nil as String?, value: String(format: "value%05d", $0)) }
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "m-count", records: input, roundRobinOver: 2)
        let metrics = TestMetrics()
        let source = Consumer.plainSource(
            Self.settings(kafka, group: "g-m-count", metrics: metrics), subscription: .topics("m-count"))
        var seen = 0
        for try await _ in source {
            seen += 1
            if seen == input.count { break }
        }
        await source.materialized.shutdown()
        #expect(metrics.counterTotal(label: MessagingMetric.consumedMessages) == 600)
        #expect(metrics.counterTotal(label: MessagingMetric.consumedBytes) == 6000)
        for partition in 0..<2 {
            let dims = [
                (MessagingMetric.system, "kafka"), (MessagingMetric.consumerGroup, "g-m-count"),
                (MessagingMetric.destination, "m-count"), (MessagingMetric.partition, String(partition)),
            ]
            #expect(try metrics.expectCounter(MessagingMetric.consumedMessages, dims).totalValue == 300)
        }
        // One rebalance assigned both partitions; leaving revoked them.
        #expect(
            metrics.counterTotal(
                label: MessagingMetric.rebalances, dimensions: [("messaging.kafka.rebalance.kind", "assigned")]) == 1)
        #expect(
            metrics.counterTotal(
                label: MessagingMetric.rebalancePartitions, dimensions: [("messaging.kafka.rebalance.kind", "assigned")]
            ) == 2)
        #expect(
            metrics.counterTotal(
                label: MessagingMetric.rebalancePartitions, dimensions: [("messaging.kafka.rebalance.kind", "revoked")])
                == 2)
        #expect(metrics.timers(label: MessagingMetric.rebalanceDuration).first?.values.count == 2)
    }

    @Test func lagIsTheBacklogBehindWhatTheStreamTookAndFallsToZeroOnceCaughtUp() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("m-lag", partitions: 1)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "m-lag", records: (0..<1000).map { (nil, "r\($0)") })
        let metrics = TestMetrics()
        // One record a batch: the stream has taken exactly the records it emitted.
        let settings = Self.settings(kafka, group: "g-m-lag", metrics: metrics).withMaxBatchSize(1)
        let source = Consumer.plainSource(settings, subscription: .topics("m-lag"))
        var iterator = source.makeAsyncIterator()
        for _ in 0..<100 { _ = try await iterator.next() }
        let lagged = try await Self.eventually(within: .seconds(10)) {
            Self.gauge(metrics, MessagingMetric.consumerLag, topic: "m-lag", partition: 0) == 900
        }
        #expect(
            lagged,
            "lag \(String(describing: Self.gauge(metrics, MessagingMetric.consumerLag, topic: "m-lag", partition: 0))), expected 900"
        )
        // While the stream stands still, the last record it took ages: lag in seconds grows.
        let aged = try await Self.eventually(within: .seconds(10)) {
            (Self.gauge(metrics, MessagingMetric.consumerLagSeconds, topic: "m-lag", partition: 0) ?? 0) >= 1
        }
        #expect(aged)
        for _ in 0..<900 { _ = try await iterator.next() }
        let caughtUp = try await Self.eventually(within: .seconds(10)) {
            Self.gauge(metrics, MessagingMetric.consumerLag, topic: "m-lag", partition: 0) == 0
                && Self.gauge(metrics, MessagingMetric.consumerLagSeconds, topic: "m-lag", partition: 0) == 0
        }
        #expect(caughtUp)
        #expect(metrics.recorders(label: MessagingMetric.bufferedBytes).count == 1)
        await source.materialized.shutdown()
        // A closed consumer has no lag: its series are gone.
        #expect(metrics.recorders(label: MessagingMetric.consumerLag).isEmpty)
    }

    @Test func withoutPerPartitionLabelsLagIsSummedPerTopic() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("m-topic-lag", partitions: 3)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "m-topic-lag", records: (0..<300).map { (nil, "r\($0)") },
            roundRobinOver: 3)
        let metrics = TestMetrics()
        var metricsSettings = KafkaMetricsSettings()
        metricsSettings.factory = metrics
        metricsSettings.perPartitionLabels = false
        let source = Consumer.plainSource(
            Self.settings(kafka, group: "g-m-topic-lag", metrics: metrics).withMaxBatchSize(1).withMetrics(
                metricsSettings),
            subscription: .topics("m-topic-lag"))
        var iterator = source.makeAsyncIterator()
        for _ in 0..<30 { _ = try await iterator.next() }
        let summed = try await Self.eventually(within: .seconds(10)) {
            metrics.recorders(label: MessagingMetric.consumerLag).first?.lastValue == 270
        }
        #expect(summed)
        #expect(metrics.recorders(label: MessagingMetric.consumerLag).count == 1)
        #expect(
            metrics.recorders(label: MessagingMetric.consumerLag).first?.dimensions.contains {
                $0.0 == MessagingMetric.partition
            } == false)
        await source.materialized.shutdown()
    }

    @Test func commitsAndTheCommitterAreCounted() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("m-commit", partitions: 2)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "m-commit", records: (0..<500).map { (nil, "c\($0)") },
            roundRobinOver: 2)
        let metrics = TestMetrics()
        var metricsSettings = KafkaMetricsSettings()
        metricsSettings.factory = metrics
        let seen = Counter()
        let control = Consumer.committableSource(
            Self.settings(kafka, group: "g-m-commit", metrics: metrics), subscription: .topics("m-commit")
        )
        .map { message in
            seen.add(message.record.value)
            return message.committableOffset
        }
        .to(Committer.sink(CommitterSettings().withMaxBatch(100).withMetrics(metricsSettings)))
        .start()
        try await seen.waitFor(count: 500)
        try await control.drainAndShutdown()
        // Every offset went through a batch; each batch committed at most both partitions.
        let batchSizes = metrics.recorders(label: MessagingMetric.committerBatchSize).flatMap(\.values)
        #expect(batchSizes.reduce(0, +) == 500)
        let committedOffsets = metrics.counterTotal(label: MessagingMetric.committerOffsets)
        #expect(committedOffsets >= 2 && committedOffsets <= 2 * Int64(batchSizes.count))
        // Batches queued together go out as one commit request.
        let successes = metrics.counterTotal(
            label: MessagingMetric.commits, dimensions: [("messaging.kafka.commit.outcome", "success")])
        #expect(successes >= 1 && successes <= Int64(batchSizes.count))
        let commitTimers = metrics.timers(label: MessagingMetric.operationDuration).filter {
            $0.dimensions.contains { $0 == (MessagingMetric.operationName, "commit") }
        }
        #expect(commitTimers.first.map { Int64($0.values.count) } == successes)
    }

    @Test func disabledMetricsRecordNothing() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("m-off", partitions: 1)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "m-off", records: (0..<50).map { (nil, "x\($0)") })
        let metrics = TestMetrics()
        var off = KafkaMetricsSettings.disabled
        off.factory = metrics
        let source = Consumer.plainSource(
            Self.settings(kafka, group: "g-m-off", metrics: metrics).withMetrics(off), subscription: .topics("m-off"))
        var seen = 0
        for try await _ in source {
            seen += 1
            if seen == 50 { break }
        }
        await source.materialized.shutdown()
        #expect(metrics.counters.isEmpty && metrics.recorders.isEmpty && metrics.timers.isEmpty)
    }
}
