import Testing

@testable import rkafka

/// The `produce-plainsink` scenario of `rkafka bench`, run as the command runs it on a small count.
@Suite(.timeLimit(.minutes(2))) struct ProducePlainSinkBenchTests {
    @Test func writesEveryRecordNextToTheRawProduceLoop() async throws {
        let command = try BenchCommand.parse([
            "--scenario", "produce-plainsink", "--messages", "3000", "--size", "20", "--partitions", "4",
        ])
        let scenario = try #require(BenchScenarios.kafkaScenario(named: "produce-plainsink"))
        let line = try await command.runKafka(scenario, BenchParameters(messages: 3_000, size: 20, partitions: 4))
        #expect(line.scenario == "produce-plainsink")
        #expect(line.messages == 3_000)
        #expect(line.msgs_per_sec > 0 && line.baseline_msgs_per_sec > 0)
        #expect(line.ratio == line.msgs_per_sec / line.baseline_msgs_per_sec)
        #expect(line.baseline == "raw librdkafka produce loop (produceva, poll(0) per message, flush)")
        // The warm-up record is in the output too.
        #expect(line.notes?.contains("output verified (3001 records), warm-up included") == true)
    }
}
