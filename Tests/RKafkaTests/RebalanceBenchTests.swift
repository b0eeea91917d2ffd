import Foundation
import Testing

@testable import rkafka

/// The `rebalance` scenario of `rkafka bench`: registration, and the recorder it judges by.
@Suite struct RebalanceBenchTests {
    @Test func theScenarioIsKnownAndRunsByDefault() throws {
        #expect(try BenchCommand.parse(["--scenario", "rebalance"]).scenarios == ["rebalance"])
        #expect(try BenchCommand.parse([]).scenarios.contains("rebalance"))
    }

    @Test func theRecorderCountsDuplicatesAndFindsPartitionsLeftBehind() async throws {
        let recorder = RebalanceRecorder(partitions: 2)
        // 6 records round-robin: partition 0 gets offsets 0…2, partition 1 gets 0…2.
        for offset in 0..<3 { recorder.record(member: 0, partition: 0, offset: Int64(offset)) }
        recorder.record(member: 0, partition: 1, offset: 0)
        recorder.record(member: 1, partition: 1, offset: 0) // delivered again to the new member
        recorder.record(member: 1, partition: 1, offset: 1)
        let s = recorder.snapshot
        #expect(s.total == 6)
        #expect(s.distinct == 5)
        #expect(s.perMember == [4, 2])
        #expect(s.behind(produced: 6) == ["1: 2/3 (B)"])
        try await recorder.wait(for: "B's first record", timeout: .seconds(1)) { $0.firstRecord[1] != nil }
        await #expect(throws: BenchError.self) {
            try await recorder.wait(for: "all records", timeout: .milliseconds(50)) { $0.distinct >= 6 }
        }
    }

    @Test func thePauseIsMeasuredFromTheJoinUntilRecordsFlowAgain() async throws {
        let recorder = RebalanceRecorder(partitions: 1)
        recorder.record(member: 0, partition: 0, offset: 0)
        recorder.markJoin(at: .now, window: .seconds(60))
        try await Task.sleep(for: .milliseconds(100))
        recorder.record(member: 1, partition: 0, offset: 1)
        recorder.record(member: 0, partition: 0, offset: 2)
        let s = recorder.snapshot
        #expect(s.longestPause >= .milliseconds(100))
        #expect(s.longestPauseEnd != nil && s.longestPauseEnd! <= s.lastRecord!)
        #expect(!s.windowClosed)
    }
}
