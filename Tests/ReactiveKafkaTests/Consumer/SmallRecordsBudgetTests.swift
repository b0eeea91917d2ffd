import Foundation
import MetricsTestKit
import ReactiveKafka
import ReactiveKafkaTestKit
import Testing

/// The consumer's byte budget counts what a fetched record costs, not only its key and value:
/// librdkafka keeps some 300 B of its own for each (measured with librdkafka alone: 290–308 B
/// for a 10-byte record), so a budget of key and value bytes let a consumer of tiny records
/// hold about 30 times its budget.
@Suite(.serialized) struct SmallRecordsBudgetTests {
    @Test func aSlowConsumerOfTenByteRecordsBuffersAsManyRecordsAsTheirMemoryAllows() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("tiny", partitions: 1)
        let input = (0..<6_000).map { (key: nil as String?, value: String(format: "v%09d", $0)) }
        try await TestData.produce(bootstrapServers: kafka.bootstrapServers, topic: "tiny", records: input)
        let budget = 64 * 1024
        let batch = 64
        let metrics = TestMetrics()
        var metricsSettings = KafkaMetricsSettings()
        metricsSettings.factory = metrics
        let settings = ConsumerEndToEndTests.settings(kafka, group: "g-tiny")
            .withMaxBufferedBytes(budget)
            .withMaxBatchSize(batch)
            .withMetrics(metricsSettings)
        let source = Consumer.plainSource(settings, subscription: .topics("tiny"))
        var read = 0
        for try await _ in source {
            read += 1
            // The stream stops: the buffer fills until half the budget pauses the partition.
            if read == 1 { try await Task.sleep(for: .seconds(2)) }
            if read == input.count { break }
        }
        let highWater = source.materialized.metrics.bufferedBytesHighWater
        // Read before the shutdown, which destroys the consumer's gauges.
        let buffered = metrics.recorders(label: MessagingMetric.bufferedMessages).flatMap(\.values).max() ?? 0
        await source.materialized.shutdown()
        // Half the budget at 10 + ~280 B a record is ~113 records; then one fetch of `batch`
        // records, and the batch the stream holds. Counting only keys and values it was ~3,300.
        let bound = budget / 2 / (10 + 280) + 2 * batch
        #expect(read == input.count)
        #expect(buffered > 0, "the buffered-messages gauge was recorded")
        #expect(
            buffered <= Double(bound),
            "buffered \(Int(buffered)) records of 10 B under a \(budget)-byte budget (bound \(bound))")
        #expect(highWater <= budget, "held \(highWater) bytes, budget \(budget)")
    }
}
