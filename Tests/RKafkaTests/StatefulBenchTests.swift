import Testing

@testable import rkafka

/// The stateful scenarios of `rkafka bench` (issue 15's performance targets), run as the command
/// runs them on small counts: each verifies its own output and says what it verified.
@Suite(.serialized, .timeLimit(.minutes(3))) struct StatefulBenchTests {
    @Test func windowedCountChecksItsOpenWindowsAgainstTheBound() async throws {
        // 300,000 elements: three one-second windows over the 10,000 keys.
        let line = try await StreamKitBenchShim.run("streamkit-windowed-count", elements: 300_000)
        #expect(line.scenario == "streamkit-windowed-count")
        #expect(line.messages == 300_000)
        #expect(line.msgs_per_sec > 0 && line.baseline_msgs_per_sec > 0)
        #expect(line.cpu_us_per_msg != nil && line.baseline_cpu_us_per_msg != nil)
        #expect(line.notes?.contains("max open windows 10001 (bound 10001), 30000 windows") == true)
    }

    @Test func windowStateCheckBoundsBySeenKeysWhenThereAreFewerElementsThanKeys() async throws {
        let note = try await StreamKitBench.WindowStateCheck.run(StreamKitBench.Counter(count: 5_000))
        #expect(note == "max open windows 5000 (bound 5001), 5000 windows")
    }

    @Test func tableLookupFindsEveryKeyInTheRestoredTable() async throws {
        let command = try BenchCommand.parse(["--scenario", "table-lookup", "--messages", "5000", "--partitions", "4"])
        let scenario = try #require(BenchScenarios.kafkaScenario(named: "table-lookup"))
        let line = try await command.runKafka(scenario, BenchParameters(messages: 5_000, size: 20, partitions: 4))
        #expect(line.scenario == "table-lookup")
        #expect(line.messages == 5_000)
        #expect(line.msgs_per_sec > 0 && line.baseline_msgs_per_sec > 0)
        #expect(line.notes == "baseline: 10000 rows | connector: 10000 rows, in memory")
    }

    @Test func eventSourcedRecoveryRecoversTheSeededChangelogNextToTheRawRead() async throws {
        let command = try BenchCommand.parse([
            "--scenario", "event-sourced-recovery", "--messages", "20000", "--partitions", "4",
        ])
        let scenario = try #require(BenchScenarios.kafkaScenario(named: "event-sourced-recovery"))
        let line = try await command.runKafka(scenario, BenchParameters(messages: 20_000, size: 20, partitions: 4))
        #expect(line.scenario == "event-sourced-recovery")
        // Every outcome carried its key's recovered count plus one, or the scenario would have thrown.
        #expect(line.messages == 20_000)
        #expect(line.msgs_per_sec > 0 && line.baseline_msgs_per_sec > 0)
        #expect(line.notes?.hasPrefix("baseline: 4 partitions read at once | connector: recovery ") == true)
        // The flow's recover_state metric saw one recovery: the member's four partitions read at once.
        #expect(line.notes?.contains("(4 partitions, read at once); flow start to 4 outcomes") == true)
    }

    @Test func recoveryKeysAndCountsAreTheSeedersAndTheBaselinesParse() {
        #expect(EventSourcedRecoveryBench.keyText(42) == "00000042")
        #expect(EventSourcedRecoveryBench.events(ofKey: 0, total: 20_005) == 3)
        #expect(EventSourcedRecoveryBench.events(ofKey: 5, total: 20_005) == 2)
        var digits: [UInt8] = Array("00001234".utf8)
        #expect(EventSourcedRecoveryBench.decimal(&digits, digits.count) == 1234)
        #expect(EventSourcedRecoveryBench.decimal(nil, 0) == 0)
    }
}
