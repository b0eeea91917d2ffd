import Foundation
import MetricsTestKit
import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Testing

/// The producer's and transactions' swift-metrics, read from a `TestMetrics` of the test's own.
@Suite(.serialized) struct ProducerMetricsTests {
    static func settings(_ kafka: EmbeddedKafka, metrics: TestMetrics) -> ProducerSettings<String, String> {
        var metricsSettings = KafkaMetricsSettings()
        metricsSettings.factory = metrics
        metricsSettings.dimensions = [("service", "metrics-test")]
        return kafka.producerSettings().withMetrics(metricsSettings)
    }

    @Test func recordsAndBytesSentAreCountedWithDeliveryLatency() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("m-out-a", partitions: 2)
        try kafka.createTopic("m-out-b", partitions: 1)
        let metrics = TestMetrics()
        // 300 records to a (key "k" + 8-byte value: 9 bytes), 200 to b (8-byte value).
        let messages = (0..<500).map { i -> ProducerMessage<String, String, Int> in
            i < 300
                ? .single(ProducerRecord(topic: "m-out-a", key: "k", value: String(format: "a%07d", i)), passThrough: i)
                : .single(ProducerRecord(topic: "m-out-b", value: String(format: "b%07d", i)), passThrough: i)
        }
        var results = 0
        for try await _ in messages.async.via(Producer.flexiFlow(Self.settings(kafka, metrics: metrics))) {
            results += 1
        }
        #expect(results == 500)
        let a = [
            (MessagingMetric.system, "kafka"), ("service", "metrics-test"), (MessagingMetric.destination, "m-out-a"),
        ]
        let b = [
            (MessagingMetric.system, "kafka"), ("service", "metrics-test"), (MessagingMetric.destination, "m-out-b"),
        ]
        #expect(try metrics.expectCounter(MessagingMetric.sentMessages, a).totalValue == 300)
        #expect(try metrics.expectCounter(MessagingMetric.sentBytes, a).totalValue == 300 * 9)
        #expect(try metrics.expectCounter(MessagingMetric.sentMessages, b).totalValue == 200)
        #expect(try metrics.expectCounter(MessagingMetric.sentBytes, b).totalValue == 200 * 8)
        let send = metrics.timers(label: MessagingMetric.operationDuration).first {
            $0.dimensions.contains { $0 == (MessagingMetric.operationName, "send") }
        }
        #expect((send?.values.count ?? 0) >= 1, "a delivery latency sample per delivery batch")
        #expect(send?.values.allSatisfy { $0 > 0 } == true)
        #expect(metrics.counterTotal(label: MessagingMetric.deliveryFailures) == 0)
    }

    @Test func undeliveredRecordsAreCountedByError() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("m-down", partitions: 1)
        let metrics = TestMetrics()
        // The only broker down and a short message timeout: each record times out.
        try kafka.brokerDown(1)
        let producer = try KafkaProducer(
            Self.settings(kafka, metrics: metrics).withProperty("message.timeout.ms", "300"))
        for i in 0..<3 {
            await #expect(throws: KafkaError.self) {
                try await producer.send(ProducerRecord(topic: "m-down", partition: 0, value: "x\(i)"))
            }
        }
        await producer.close()
        #expect(metrics.counterTotal(label: MessagingMetric.deliveryFailures) == 3)
        #expect(
            metrics.counterTotal(
                label: MessagingMetric.deliveryFailures, dimensions: [(MessagingMetric.errorType, "_MSG_TIMED_OUT")])
                == 3)
        #expect(metrics.counterTotal(label: MessagingMetric.sentMessages) == 0)
    }

    @Test func transactionsAreCountedWithTheirRecords() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("m-txn", partitions: 2)
        let metrics = TestMetrics()
        let producer = try TransactionalProducer(
            Self.settings(kafka, metrics: metrics).withProperty("transaction.timeout.ms", "10000"),
            transactionalId: "m-txn-1")
        try await producer.transaction { t in
            for i in 0..<40 { try await t.send(ProducerRecord(topic: "m-txn", value: "first\(i)")) }
        }
        struct Boom: Error {}
        await #expect(throws: Boom.self) {
            try await producer.transaction { t in
                try await t.send(ProducerRecord(topic: "m-txn", value: "aborted"))
                throw Boom()
            }
        }
        try await producer.transaction { t in
            for i in 0..<7 { try await t.send(ProducerRecord(topic: "m-txn", value: "second\(i)")) }
        }
        await producer.close()
        let outcome = "messaging.kafka.transaction.outcome"
        #expect(metrics.counterTotal(label: MessagingMetric.transactions, dimensions: [(outcome, "committed")]) == 2)
        #expect(metrics.counterTotal(label: MessagingMetric.transactions, dimensions: [(outcome, "aborted")]) == 1)
        #expect(metrics.recorders(label: MessagingMetric.transactionRecords).first?.values == [40, 7])
        let commits = metrics.timers(label: MessagingMetric.operationDuration).first {
            $0.dimensions.contains { $0 == (MessagingMetric.operationName, "commit_transaction") }
        }
        #expect(commits?.values.count == 2)
    }
}
