import ReactiveKafka
import Synchronization

/// Counts how often each (partition, offset) was processed, across every
/// member of a group, and lets a test wait for a number of records.
final class OffsetLedger: Sendable {
    private struct State {
        var seen: [TopicPartition: [Int64: Int]] = [:]
        var total = 0
        var distinct = 0
    }

    private let state = Mutex(State())
    private let gate = CountGate()

    func record(_ partition: TopicPartition, _ offset: Int64) {
        let distinct = state.withLock { s -> Int in
            s.total += 1
            let previous = s.seen[partition, default: [:]][offset, default: 0]
            s.seen[partition, default: [:]][offset] = previous + 1
            if previous == 0 { s.distinct += 1 }
            return s.distinct
        }
        gate.reached(distinct)
    }

    var total: Int { state.withLock { $0.total } }
    var distinct: Int { state.withLock { $0.distinct } }

    /// (partition, offset) processed more than once.
    var duplicates: [(TopicPartition, Int64)] {
        state.withLock { s in s.seen.flatMap { p, offsets in offsets.filter { $0.value > 1 }.map { (p, $0.key) } } }
    }

    /// Offsets in `0..<end[p]` never processed.
    func missing(_ end: [TopicPartition: Int64]) -> [(TopicPartition, Int64)] {
        state.withLock { s in
            end.flatMap { p, end in (0..<end).filter { s.seen[p]?[$0] == nil }.map { (p, $0) } }
        }
    }

    /// Suspends until `count` distinct records were processed; false after `timeout`.
    func waitFor(distinct count: Int, timeout: Duration = .seconds(60)) async -> Bool {
        await gate.wait(for: count, timeout: timeout)
    }
}

/// A value behind a lock that tasks can share (a `Mutex` cannot be captured by escaping closures).
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) { mutex = Mutex(value) }

    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}
