import ReactiveKafka
import Synchronization

/// Counts how often each (partition, offset) was processed, across every
/// member of a group, and lets a test wait for a number of records.
final class OffsetLedger: Sendable {
    private struct State {
        var seen: [TopicPartition: [Int64: Int]] = [:]
        /// Who processed each record, when the caller says (group tests: the member's name).
        var processors: [TopicPartition: [Int64: [String]]] = [:]
        var total = 0
        var distinct = 0
    }

    private let state = Mutex(State())
    private let gate = CountGate()

    /// Counts one processing of `partition`/`offset`, by the member `member` if given.
    func record(_ partition: TopicPartition, _ offset: Int64, by member: String? = nil) {
        let distinct = state.withLock { s -> Int in
            if let member { s.processors[partition, default: [:]][offset, default: []].append(member) }
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

    /// Records processed more than once by one and the same member (not a hand-over to another).
    var duplicatesBySameMember: [(TopicPartition, Int64)] {
        state.withLock { s in
            s.processors.flatMap { p, offsets in
                offsets.filter { Set($0.value).count < $0.value.count }.map { (p, $0.key) }
            }
        }
    }

    /// Records processed more than once, as runs of consecutive offsets per partition processed by
    /// the same members in the same order (`p@first...last (count) by [members]`): shows which
    /// hand-over, or which member reading again, they came from.
    func duplicateRanges() -> [String] {
        state.withLock { s in
            var out: [String] = []
            for (p, offsets) in s.seen.sorted(by: { $0.key < $1.key }) {
                let dups = offsets.filter { $0.value > 1 }.map(\.key).sorted()
                var i = 0
                while i < dups.count {
                    var j = i
                    while j + 1 < dups.count, dups[j + 1] == dups[j] + 1,
                        s.processors[p]?[dups[j + 1]] == s.processors[p]?[dups[i]]
                    { j += 1 }
                    out.append("\(p)@\(dups[i])...\(dups[j]) (\(j - i + 1)) by \(s.processors[p]?[dups[i]] ?? [])")
                    i = j + 1
                }
            }
            return out
        }
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
