import AsyncAlgorithms
import Foundation
import StreamKit

/// StreamKit operator benchmarks for `rkafka bench`: each scenario runs an
/// operator over trivial work and, in the same run, a hand-written
/// `for await` loop doing the same, and reports both in one ``BenchLine``.
enum StreamKitBench {
    static let scenarios: [String] = [
        "streamkit-map-filter",
        "streamkit-mapasync",
        "streamkit-groupedwithin",
        "streamkit-buffer",
        "streamkit-broadcast",
    ]

    /// Runs `scenario` over `elements` integers and returns its result line.
    static func run(_ scenario: String, elements: Int) async throws -> BenchLine {
        let n = max(1, elements)
        let source = Counter(count: n)
        switch scenario {
        case "streamkit-map-filter":
            return try await compare(scenario, n, baseline: "hand-written for-await loop (map + filter inline)") {
                var sum = 0
                // Through `Source`, as pipelines are written: its synchronous map/filter inline.
                for await x in Source(source).map({ work($0) }).filter({ $0 & 1 == 0 }) { sum &+= x }
                return sum
            } baselineBody: {
                var sum = 0
                for await x in source {
                    let y = work(x)
                    if y & 1 == 0 { sum &+= y }
                }
                return sum
            }
        case "streamkit-mapasync":
            return try await compare(
                scenario, n, baseline: "hand-written for-await loop awaiting the same async function",
                notes: "parallelism 8"
            ) {
                var sum = 0
                for try await x in source.mapAsync(parallelism: 8, { await triple($0) }) { sum &+= x }
                return sum
            } baselineBody: {
                var sum = 0
                for await x in source { sum &+= await triple(x) }
                return sum
            }
        case "streamkit-groupedwithin":
            return try await compare(
                scenario, n, baseline: "hand-written for-await loop collecting arrays of 100",
                notes: "count 100, duration 1 s"
            ) {
                var sum = 0
                for try await group in source.groupedWithin(count: 100, duration: .seconds(1)) {
                    sum &+= work(group.count)
                }
                return sum
            } baselineBody: {
                var sum = 0
                var group: [Int] = []
                group.reserveCapacity(100)
                for await x in source {
                    group.append(x)
                    if group.count == 100 {
                        sum &+= work(group.count)
                        group = []
                        group.reserveCapacity(100)
                    }
                }
                if !group.isEmpty { sum &+= work(group.count) }
                return sum
            }
        case "streamkit-buffer":
            return try await compare(
                scenario, n, baseline: "hand-written for-await loop (no buffer)",
                notes: "size 1024, backpressure; producer and consumer on separate tasks"
            ) {
                var sum = 0
                for try await x in source.buffer(size: 1024, overflow: .backpressure) { sum &+= work(x) }
                return sum
            } baselineBody: {
                var sum = 0
                for await x in source { sum &+= work(x) }
                return sum
            }
        case "streamkit-broadcast":
            return try await compare(
                scenario, n, baseline: "hand-written for-await loop summing twice",
                notes: "2 consumers, buffer 256 each"
            ) {
                let branches = source.broadcast(count: 2, bufferSize: 256)
                return try await withThrowingTaskGroup(of: Int.self) { group in
                    for branch in branches {
                        group.addTask {
                            var sum = 0
                            for try await x in branch { sum &+= work(x) }
                            return sum
                        }
                    }
                    return try await group.reduce(0, &+)
                }
            } baselineBody: {
                var first = 0
                var second = 0
                for await x in source {
                    first &+= work(x)
                    second &+= work(x)
                }
                return first &+ second
            }
        default:
            throw StreamKitError.invalidArgument(
                "unknown StreamKit bench scenario \(scenario); known: \(scenarios.joined(separator: ", "))")
        }
    }

    /// 0..<count as an async sequence that never suspends: the cheapest
    /// possible upstream, so the operators' own cost dominates. It implements
    /// `next(isolation:)` as Swift 6 sources should, so generic operators
    /// specialise over it.
    struct Counter: AsyncSequence, Sendable {
        typealias Element = Int
        typealias Failure = Never
        let count: Int

        struct Iterator: AsyncIteratorProtocol {
            typealias Failure = Never
            var current = 0
            let count: Int

            @inline(__always)
            mutating func next() async -> Int? {
                guard current < count else { return nil }
                defer { current &+= 1 }
                return current
            }

            @inline(__always)
            mutating func next(isolation actor: isolated (any Actor)?) async -> Int? {
                guard current < count else { return nil }
                defer { current &+= 1 }
                return current
            }
        }

        func makeAsyncIterator() -> Iterator { Iterator(count: count) }
    }

    @inline(never)
    static func triple(_ x: Int) async -> Int { x &* 3 }

    /// Opaque trivial work: keeps the optimiser from folding either loop away.
    @inline(never)
    static func work(_ x: Int) -> Int { x &* 3 }

    /// Measures `body` and `baselineBody` (baseline first, then the operator) and checks they agree.
    private static func compare(
        _ scenario: String, _ n: Int, baseline: String, notes: String? = nil,
        body: () async throws -> Int, baselineBody: () async throws -> Int
    ) async throws -> BenchLine {
        // Warm up both paths so neither pays first-use costs.
        _ = try await baselineBody()
        _ = try await body()
        let (baselineSeconds, baselineAllocs, expected) = try await measureBest(baselineBody)
        let (seconds, allocs, got) = try await measureBest(body)
        guard got == expected else {
            throw StreamKitError.invalidArgument(
                "\(scenario): operator result \(got) differs from baseline \(expected)")
        }
        let rate = Double(n) / seconds
        let baselineRate = Double(n) / baselineSeconds
        return BenchLine(
            scenario: scenario, messages: n, msgs_per_sec: rate, baseline_msgs_per_sec: baselineRate,
            ratio: rate / baselineRate, peak_rss_mb: peakRSSMegabytes(),
            allocs_per_msg: AllocationCounterCheck.isWorking ? Double(allocs) / Double(n) : nil,
            baseline_allocs_per_msg: AllocationCounterCheck.isWorking ? Double(baselineAllocs) / Double(n) : nil,
            baseline: baseline, notes: notes
        )
    }

    /// Runs that finish in a few milliseconds are at the mercy of the scheduler on a shared
    /// machine: repeat them (at most 20 times, until 0.25 s were spent) and keep the fastest run.
    /// Both sides of a scenario are measured the same way.
    private static func measureBest(_ body: () async throws -> Int) async throws -> (Double, UInt64, Int) {
        var best = try await measure(body)
        var spent = best.0
        var runs = 1
        while spent < 0.25 && runs < 20 {
            let next = try await measure(body)
            spent += next.0
            runs += 1
            if next.0 < best.0 { best = next }
        }
        return best
    }

    private static func measure(_ body: () async throws -> Int) async throws -> (Double, UInt64, Int) {
        let allocsBefore = allocationCount()
        let start = ContinuousClock.now
        let result = try await body()
        let elapsed = ContinuousClock.now - start
        let allocs = allocationCount() - allocsBefore
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return (max(seconds, 1e-9), allocs, result)
    }
}
