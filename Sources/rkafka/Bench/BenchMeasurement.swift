import Foundation

/// What one measured phase (a baseline or a connector run) achieved.
struct BenchMeasurement: Sendable {
    /// Messages processed in the measured phase.
    var messages: Int
    /// Wall-clock seconds of the measured phase.
    var seconds: Double
    /// Heap allocations of the whole process during the phase; `nil` when the counter is not working.
    var allocations: UInt64?
    /// Peak resident set size during the phase, MiB (the whole process, embedded cluster included).
    var peakRSSMegabytes: Double
    /// CPU time (user + system) of the whole process during the phase, embedded cluster included.
    /// Unlike throughput it hardly moves when something else shares the machine's cores.
    var cpuSeconds: Double = 0
    /// Anything a reader of the result should know (commit failures, duplicates, …).
    var notes: [String] = []

    var messagesPerSecond: Double { seconds > 0 ? Double(messages) / seconds : 0 }
    var cpuMicrosecondsPerMessage: Double { messages > 0 ? cpuSeconds * 1e6 / Double(messages) : 0 }
    var allocationsPerMessage: Double? {
        guard let allocations, messages > 0 else { return nil }
        return Double(allocations) / Double(messages)
    }
}

/// Times one phase the same way for baselines and connector versions: the clock, the
/// allocation counter and the peak-RSS mark start at ``begin()`` (consumers call it when
/// the first record arrives, so group joins are not measured; the C reference does the
/// same) and stop at ``finish(messages:notes:)``.
struct PhaseMeter: Sendable {
    private var startTime: ContinuousClock.Instant?
    private var startAllocations: UInt64 = 0
    private var startCPU: Double = 0

    init() { resetPeakRSS() }

    var hasBegun: Bool { startTime != nil }

    /// Starts the clock; later calls do nothing.
    mutating func begin() {
        guard startTime == nil else { return }
        startAllocations = allocationCount()
        startCPU = processCPUSeconds()
        startTime = .now
    }

    /// Stops the clock (starting it first if nobody did) and returns the measurement.
    mutating func finish(messages: Int, notes: [String] = []) -> BenchMeasurement {
        let end = ContinuousClock.now
        let endCPU = processCPUSeconds()
        let endAllocations = allocationCount()
        let start = startTime ?? end
        let elapsed = end - start
        return BenchMeasurement(
            messages: messages,
            seconds: elapsed.inSeconds,
            allocations: AllocationCounterCheck.isWorking ? endAllocations &- startAllocations : nil,
            peakRSSMegabytes: peakRSSMegabytes(),
            cpuSeconds: startTime == nil ? 0 : endCPU - startCPU,
            notes: notes
        )
    }
}

/// User plus system CPU time of this process so far, every thread.
func processCPUSeconds() -> Double {
    var usage = rusage()
    #if canImport(Glibc)
        let who = RUSAGE_SELF.rawValue // an enum in Glibc's module, a plain macro in Darwin's
    #else
        let who = RUSAGE_SELF
    #endif
    guard getrusage(who, &usage) == 0 else { return 0 }
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Resets the kernel's peak-RSS mark (`VmHWM`) to the current RSS, so that
/// ``peakRSSMegabytes()`` reports the peak of the phase that follows, not of the run so far.
func resetPeakRSS() {
    // "5" in clear_refs resets the peak RSS (Linux ≥ 4.0); harmless where unsupported.
    guard let handle = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return }
    defer { try? handle.close() }
    try? handle.write(contentsOf: Data("5".utf8))
}

/// Whether ``allocationCount()`` really counts this process's mallocs. If the interposer
/// were not linked in (or malloc were bound elsewhere) the counter would stay flat and
/// every allocs/msg figure would read 0: checked once, and reported as unknown instead.
/// Sanitizer builds compile the interposer out (``allocationCounterAvailable``).
enum AllocationCounterCheck {
    static let isWorking: Bool = {
        guard allocationCounterAvailable else { return false }
        let before = allocationCount()
        var arrays: [[Int]] = []
        arrays.reserveCapacity(1000)
        for i in 0..<1000 { arrays.append([Int](repeating: i, count: 8 + i % 5)) }
        let after = allocationCount()
        // Keep the arrays observable so the optimiser cannot drop them.
        let total = arrays.reduce(0) { $0 &+ $1.count }
        return total > 0 && after &- before >= 1000
    }()
}
