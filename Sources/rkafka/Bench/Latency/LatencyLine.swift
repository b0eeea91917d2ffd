import Foundation
import Histogram

/// One point of the latency scenario, connector and raw relay side by side: one JSON object a
/// line with `--json`. Latencies are in milliseconds, from the produce call of the load generator
/// to the reader's consumption of the relayed record.
struct LatencyLine: Codable, Sendable {
    /// p50, p99, p99.9 and max of one side's records at one point.
    struct Percentiles: Codable, Sendable {
        var records: Int
        var p50_ms: Double
        var p99_ms: Double
        var p99_9_ms: Double
        var max_ms: Double

        init(_ histogram: Histogram<UInt64>) {
            func ms(_ micros: UInt64) -> Double { Double(micros) / 1000 }
            records = Int(histogram.totalCount)
            p50_ms = ms(histogram.valueAtPercentile(50))
            p99_ms = ms(histogram.valueAtPercentile(99))
            p99_9_ms = ms(histogram.valueAtPercentile(99.9))
            max_ms = ms(histogram.max)
        }
    }

    /// The connector's p99 may exceed the raw relay's by this much (issue 14).
    static let targetDeltaP99Milliseconds = 1.0

    var scenario = LatencyBench.name
    var linger_ms: Int
    /// "fixed" (`--rate`) or "50% of max" (of the connector pipeline's maximum in this run).
    var rate_basis: String
    var offered_msgs_per_sec: Int
    var connector: Percentiles
    var raw: Percentiles
    /// Connector p99 − raw p99.
    var delta_p99_ms: Double
    var target_met: Bool
    /// Each pipeline's end-to-end throughput, unpaced, in this run.
    var connector_max_msgs_per_sec: Double
    var raw_max_msgs_per_sec: Double
    var notes: String
    /// With `--repeat`: every run's `delta_p99_ms`, in run order.
    var delta_p99_runs: [Double]? = nil

    init(
        lingerMilliseconds: Int, rateBasis: String, connector: LatencySession.Sample, raw: LatencySession.Sample,
        connectorMaximum: Double, rawMaximum: Double, notes: [String]
    ) {
        linger_ms = lingerMilliseconds
        rate_basis = rateBasis
        offered_msgs_per_sec = connector.offeredRate
        self.connector = Percentiles(connector.histogram)
        self.raw = Percentiles(raw.histogram)
        // From whole microseconds, so that the difference prints as it reads.
        delta_p99_ms = ((self.connector.p99_ms - self.raw.p99_ms) * 1000).rounded() / 1000
        target_met = delta_p99_ms <= Self.targetDeltaP99Milliseconds
        connector_max_msgs_per_sec = connectorMaximum
        raw_max_msgs_per_sec = rawMaximum
        self.notes = notes.joined(separator: " | ")
    }

    /// Per linger and rate basis (in first-seen order), the run with the median `delta_p99_ms`
    /// (the lower middle one for an even count), carrying every run's delta.
    static func medians(of lines: [LatencyLine]) -> [LatencyLine] {
        var keys: [String] = []
        var runs: [String: [LatencyLine]] = [:]
        for line in lines {
            let key = "\(line.linger_ms) \(line.rate_basis)"
            if runs[key] == nil { keys.append(key) }
            runs[key, default: []].append(line)
        }
        return keys.map { key in
            let all = runs[key]!
            guard all.count > 1 else { return all[0] }
            var median = all.sorted { $0.delta_p99_ms < $1.delta_p99_ms }[(all.count - 1) / 2]
            median.delta_p99_runs = all.map(\.delta_p99_ms)
            return median
        }
    }

    func jsonLine() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try! encoder.encode(self), as: UTF8.self)
    }

    func humanLine() -> String {
        func side(_ p: Percentiles) -> String {
            String(format: "p50 %.2f  p99 %.2f  p99.9 %.2f  max %.2f ms", p.p50_ms, p.p99_ms, p.p99_9_ms, p.max_ms)
        }
        let runs =
            delta_p99_runs.map {
                "  median of \($0.count) runs: " + $0.map { String(format: "%+.2f", $0) }.joined(separator: " ")
            } ?? ""
        return String(format: "%-30@ ", "latency linger.ms \(linger_ms)" as NSString)
            + "\(offered_msgs_per_sec) msgs/s (\(rate_basis))   connector \(side(connector))   raw \(side(raw))   "
            + String(
                format: "Δp99 %+.2f ms (target ≤ +%.0f ms: %@)", delta_p99_ms, Self.targetDeltaP99Milliseconds,
                target_met ? "met" : "missed")
            + String(
                format: "   max msgs/s: connector %.0f, raw %.0f", connector_max_msgs_per_sec, raw_max_msgs_per_sec)
            + runs
    }
}
