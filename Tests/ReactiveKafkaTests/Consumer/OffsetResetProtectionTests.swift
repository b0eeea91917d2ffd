import Logging
import ReactiveKafkaTestKit
import StreamKit
import Testing

@testable import ReactiveKafka

/// A fetch that falls out of range makes librdkafka reset the partition to
/// `auto.offset.reset` (here the start of the log): with protection the
/// consumer seeks back to its committed offset instead of reprocessing.
@Suite(.serialized) struct OffsetResetProtectionTests {
    /// Consumes 2,000 records, forcing an offset reset after the first 1,000; returns the offsets emitted in order.
    func consumeThroughAReset(protection: OffsetResetProtection?, logs: CapturedLogs) async throws -> [Int64] {
        let kafka = try await SourceKindsTests.seeded("reset", partitions: 1, records: 1_000)
        let settings = SourceKindsTests.settings(kafka, group: "g-reset").withMaxBatchSize(100)
            .withOffsetResetProtection(protection)
        let logger = Logger(label: "test.reset") { _ in CapturingLogHandler(logs: logs) }
        let emitted = Locked<[Int64]>([])
        let ledger = OffsetLedger()
        let control = Consumer.committableSource(settings, subscription: .topics("reset"), logger: logger)
            .map { message in
                emitted.withLock { $0.append(message.record.offset) }
                ledger.record(message.committableOffset.partitionOffset.topicPartition, message.record.offset)
                if message.record.offset % 50 == 0 { try await Task.sleep(for: .milliseconds(10)) }
                return message.committableOffset
            }
            .to(Committer.sink(CommitterSettings().withMaxBatch(20)))
            .start()
        #expect(await ledger.waitFor(distinct: 1_000))
        // The next fetches answer "out of range": librdkafka resets the partition to offset 0.
        try kafka.failNextRequests(.fetch, with: [.offsetOutOfRange, .offsetOutOfRange])
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "reset",
            records: (1_000..<2_000).map { (nil, "reset-\($0)") }, partition: 0)
        #expect(await ledger.waitFor(distinct: 2_000, timeout: .seconds(60)))
        _ = try await control.drainAndShutdown()
        return emitted.withLock { $0 }
    }

    @Test func aResetToTheStartIsSoughtBackToTheCommittedOffset() async throws {
        let logs = CapturedLogs()
        let offsets = try await consumeThroughAReset(
            protection: OffsetResetProtection(offsetThreshold: 100), logs: logs)
        let jumpsBack = zip(offsets, offsets.dropFirst()).filter { $1 < $0 }
        // At most a bounded step back (records emitted but not yet committed), never to the start.
        #expect(jumpsBack.allSatisfy { $0.0 - $0.1 <= 100 + 20 + 100 }, "jumped back: \(jumpsBack.prefix(5))")
        #expect(offsets.count < 2_000 + 300, "reprocessed \(offsets.count - 2_000) records")
        #expect(logs.messages.contains { $0.level == .warning && $0.message.contains("offset reset protection") })
    }

    @Test func withoutProtectionTheResetReprocessesTheTopic() async throws {
        let offsets = try await consumeThroughAReset(protection: nil, logs: CapturedLogs())
        #expect(
            zip(offsets, offsets.dropFirst()).contains { $1 == 0 && $0 >= 999 },
            "the reset moved the consumer back to offset 0")
    }

    @Test func protectionNeedsAThreshold() async throws {
        #expect(throws: KafkaError.self) {
            try ConsumerSettings().withOffsetResetProtection(OffsetResetProtection()).validate()
        }
        #expect(throws: KafkaError.self) {
            try ConsumerSettings().withOffsetResetProtection(OffsetResetProtection(offsetThreshold: -1)).validate()
        }
    }
}
