import Foundation
import Histogram
import ReactiveKafkaTestKit
import Testing

@testable import rkafka

/// The `latency` scenario of `rkafka bench`: its options, the stamp and recorder it measures with,
/// how repeated runs are summarised, and a short run of the whole scenario.
@Suite(.timeLimit(.minutes(3))) struct LatencyBenchTests {
    @Test func theScenarioIsKnownRunsByDefaultAndTakesTheIssuesDefaults() throws {
        #expect(try BenchCommand.parse(["--scenario", "latency"]).scenarios == ["latency"])
        #expect(try BenchCommand.parse([]).scenarios.contains("latency"))
        let options = try BenchCommand.parse([]).latency
        #expect(options.rate == 50_000)
        #expect(options.lingers == [0, 5])
        #expect(options.plan.measured == .seconds(3))
        #expect(try BenchCommand.parse(["--linger-ms", "5, 0,10"]).latency.lingers == [5, 0, 10])
        // --messages does not apply: 1M × 100 B on 4 partitions would be rejected for the throughput scenarios.
        #expect(try BenchCommand.parse(["--scenario", "latency", "--partitions", "4"]).partitions == 4)
    }

    @Test func badLatencyOptionsAreRejected() {
        for arguments in [
            ["--linger-ms", "x"], ["--linger-ms", "-1"], ["--linger-ms", ""], ["--rate", "0"],
            ["--point-seconds", "0"],
            ["--scenario", "latency", "--size", "11"],
        ] {
            #expect(throws: (any Error).self, "\(arguments)") { try BenchCommand.parse(arguments) }
        }
    }

    @Test func theStampRoundTripsAndAValueTooShortHasNone() {
        var value = [UInt8](repeating: UInt8(ascii: "x"), count: 20)
        value.withUnsafeMutableBytes {
            LatencyStamp.write(sentNanoseconds: 1_234_567_890_123, point: 7, into: $0.baseAddress!)
        }
        let stamp = value.withUnsafeBytes { LatencyStamp.read($0.baseAddress, length: $0.count) }
        #expect(stamp?.sent == 1_234_567_890_123)
        #expect(stamp?.point == 7)
        #expect(value[12...].allSatisfy { $0 == UInt8(ascii: "x") })
        #expect(value.withUnsafeBytes { LatencyStamp.read($0.baseAddress, length: 11) } == nil)
        #expect(LatencyStamp.read(nil, length: 20) == nil)
    }

    @Test func theRecorderKeepsEachPointsLatenciesApartFromUnmeasuredRecords() async throws {
        let recorder = LatencyRecorder()
        // Point 1: latencies 1…100 ms; point 0 (warm-up): 3 records; 2 values without a stamp.
        let readAt: Int64 = 1_000_000_000
        var stamps = (1...100).map { (sent: readAt - Int64($0) * 1_000_000, point: UInt32(1)) }
        stamps += [(sent: readAt, point: 0), (sent: readAt, point: 0), (sent: readAt, point: 0)]
        stamps.withUnsafeBufferPointer { recorder.record(readAt: readAt, stamps: $0, unstamped: 2) }
        let s = recorder.snapshot
        #expect(s.count(of: 1) == 100)
        #expect(s.count(of: 2) == 0)
        #expect(s.unmeasured == 3)
        #expect(s.unstamped == 2)
        let percentiles = LatencyLine.Percentiles(try #require(s.points[1]).histogram)
        #expect(percentiles.records == 100)
        #expect(abs(percentiles.p50_ms - 50) < 0.1)
        #expect(abs(percentiles.p99_ms - 99) < 0.1)
        #expect(abs(percentiles.max_ms - 100) < 0.1)
        try await recorder.wait(for: "point 1", timeout: .seconds(1)) { $0.count(of: 1) >= 100 }
        await #expect(throws: BenchError.self) {
            try await recorder.wait(for: "point 2", timeout: .milliseconds(50)) { $0.count(of: 2) >= 1 }
        }
    }

    @Test func repeatedRunsReportTheMedianDeltaPerLingerAndRate() throws {
        func sample(_ rate: Int, p99Micros: UInt64) -> LatencySession.Sample {
            var histogram = Histogram<UInt64>(highestTrackableValue: LatencyRecorder.highestMicroseconds)
            // Of 100 values the 99th is p99: 98 of 1 ms, then two of `p99Micros`.
            histogram.record(1_000, count: 98)
            histogram.record(p99Micros, count: 2)
            return LatencySession.Sample(offeredRate: rate, histogram: histogram, generatorLateness: .zero)
        }
        func line(linger: Int, _ basis: String, connectorMicros: UInt64) -> LatencyLine {
            LatencyLine(
                lingerMilliseconds: linger, rateBasis: basis, connector: sample(100, p99Micros: connectorMicros),
                raw: sample(100, p99Micros: 2_000), connectorMaximum: 1000, rawMaximum: 2000, notes: ["n"])
        }
        let runs = [
            line(linger: 0, "fixed", connectorMicros: 9_000), line(linger: 0, "fixed", connectorMicros: 2_000),
            line(linger: 0, "fixed", connectorMicros: 5_000), line(linger: 5, "fixed", connectorMicros: 3_000),
        ]
        let medians = LatencyLine.medians(of: runs)
        #expect(medians.map(\.linger_ms) == [0, 5])
        #expect(medians[0].delta_p99_runs == [7, 0, 3])
        #expect(medians[0].delta_p99_ms == 3)
        #expect(!medians[0].target_met)
        #expect(medians[1].delta_p99_runs == nil)
        #expect(medians[1].delta_p99_ms == 1)
        #expect(medians[1].target_met)
        let json = medians[0].jsonLine()
        for field in [
            "\"linger_ms\"", "\"offered_msgs_per_sec\"", "\"p99_9_ms\"", "\"delta_p99_ms\"", "\"delta_p99_runs\"",
            "\"rate_basis\"",
        ] {
            #expect(json.contains(field))
        }
        let decoded = try JSONDecoder().decode(LatencyLine.self, from: Data(json.utf8))
        #expect(decoded.raw.records == 100)
        #expect(medians[0].humanLine().contains("Δp99 +3.00 ms"))
    }

    /// Every point of one `linger.ms` on a small load: both sides measured at both rates, every
    /// record read back once, every input offset committed (``LatencySession/finish()`` checks).
    @Test func aShortRunMeasuresBothSidesAtBothRates() async throws {
        let kafka = try EmbeddedKafka()
        defer { kafka.stop() }
        let connection = ClusterConnection(bootstrapServers: kafka.bootstrapServers, embedded: kafka)
        var plan = LatencyPlan(rate: 2_000, lingers: [0], measured: .milliseconds(300))
        plan.warmUp = .milliseconds(100)
        plan.maximumProbeMessages = 3_000
        let lines = try await LatencyBench.measure(
            linger: 0, connection: connection, size: 20, partitions: 2, plan: plan)
        #expect(lines.map(\.rate_basis) == ["fixed", "50% of max"])
        #expect(lines[0].offered_msgs_per_sec == 2_000)
        #expect(lines[1].offered_msgs_per_sec == Int(lines[0].connector_max_msgs_per_sec / 2))
        for line in lines {
            #expect(line.linger_ms == 0)
            #expect(line.connector_max_msgs_per_sec > 0 && line.raw_max_msgs_per_sec > 0)
            for side in [line.connector, line.raw] {
                // About rate × 0.3 s; the load generator may wake late, never early.
                #expect(side.records > 0 && side.records <= line.offered_msgs_per_sec * 3 / 10 + 1)
                #expect(
                    0 < side.p50_ms && side.p50_ms <= side.p99_ms && side.p99_ms <= side.p99_9_ms
                        && side.p99_9_ms <= side.max_ms)
            }
            #expect(abs(line.delta_p99_ms - (line.connector.p99_ms - line.raw.p99_ms)) < 0.0005)
            #expect(line.notes.contains("connector: committed offsets verified"))
            #expect(line.notes.contains("raw: committed offsets verified"))
            #expect(!line.notes.contains("read twice"))
        }
    }
}
