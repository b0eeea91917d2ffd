import CAllocationCounter
import Foundation

/// One benchmark scenario's result: one JSON object a line with `--json`.
///
/// `ratio` is `msgs_per_sec / baseline_msgs_per_sec`, both measured in the same run.
struct BenchLine: Codable, Sendable {
    var scenario: String
    var messages: Int
    var msgs_per_sec: Double
    var baseline_msgs_per_sec: Double
    var ratio: Double
    var peak_rss_mb: Double
    /// Heap allocations per message in the measured phase (malloc calls / messages), when measured.
    var allocs_per_msg: Double?
    /// Same, for the baseline.
    var baseline_allocs_per_msg: Double?
    /// What the baseline is ("raw librdkafka consume loop", "hand-written for-await loop", …).
    var baseline: String
    /// Free-form notes (duplicates counted, partitions, sizes).
    var notes: String?
    /// Peak resident set size of the process during the baseline's phase, MiB.
    var baseline_peak_rss_mb: Double? = nil
    /// CPU time of the whole process (embedded cluster included) per message, µs.
    var cpu_us_per_msg: Double? = nil
    /// Same, for the baseline.
    var baseline_cpu_us_per_msg: Double? = nil

    /// With `--repeat`: every run's ratio, in run order.
    var ratio_runs: [Double]? = nil

    /// The run with the median ratio (the lower middle one for an even count), carrying every run's ratio.
    static func median(of runs: [BenchLine]) -> BenchLine? {
        guard !runs.isEmpty else { return nil }
        guard runs.count > 1 else { return runs[0] }
        var line = runs.sorted { $0.ratio < $1.ratio }[(runs.count - 1) / 2]
        line.ratio_runs = runs.map(\.ratio)
        return line
    }

    func jsonLine() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try! encoder.encode(self), as: UTF8.self)
    }

    func humanLine() -> String {
        let allocs = allocs_per_msg.map { String(format: "  allocs/msg %.2f", $0) } ?? ""
        let baseAllocs = baseline_allocs_per_msg.map { String(format: " (baseline %.2f)", $0) } ?? ""
        let cpu = cpu_us_per_msg.map { String(format: "  cpu/msg %.2f µs", $0) } ?? ""
        let baseCPU = baseline_cpu_us_per_msg.map { String(format: " (baseline %.2f)", $0) } ?? ""
        let runs =
            ratio_runs.map {
                "  median of \($0.count) runs: " + $0.map { String(format: "%.2f", $0) }.joined(separator: " ")
            } ?? ""
        return String(
            format: "%-30@ %10.0f msgs/s   baseline %10.0f msgs/s   ratio %.2f   peak RSS %.0f MB",
            scenario as NSString, msgs_per_sec, baseline_msgs_per_sec, ratio, peak_rss_mb
        ) + allocs + baseAllocs + cpu + baseCPU + runs
    }
}

/// Peak resident set size of this process in MiB (`VmHWM` from /proc/self/status).
func peakRSSMegabytes() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
        return kb / 1024
    }
    return 0
}

/// Heap allocations made by the whole process so far (every thread).
func allocationCount() -> UInt64 { allocation_counter_allocations() }

/// False in ThreadSanitizer and AddressSanitizer builds, which keep the sanitizer's
/// allocator: ``allocationCount()`` then stays 0.
var allocationCounterAvailable: Bool { allocation_counter_available() != 0 }
