import ReactiveKafka
import Synchronization

/// Counts how often each (partition, offset) was processed, across every
/// member of a group, and lets a test wait for a number of records.
final class OffsetLedger: Sendable {
    private struct State {
        var seen: [TopicPartition: [Int64: Int]] = [:]
        var total = 0
        var distinct = 0
        var waiters: [(Int, CheckedContinuation<Void, Never>)] = []
    }

    private let state = Mutex(State())

    func record(_ partition: TopicPartition, _ offset: Int64) {
        let ready = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.total += 1
            let previous = s.seen[partition, default: [:]][offset, default: 0]
            s.seen[partition, default: [:]][offset] = previous + 1
            if previous == 0 { s.distinct += 1 }
            let distinct = s.distinct
            let ready = s.waiters.filter { $0.0 <= distinct }.map(\.1)
            s.waiters.removeAll { $0.0 <= distinct }
            return ready
        }
        for c in ready { c.resume() }
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
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withCheckedContinuation { c in
                    let now = self.state.withLock { s -> Bool in
                        if s.distinct >= count { return true }
                        s.waiters.append((count, c))
                        return false
                    }
                    if now { c.resume() }
                }
                return true
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next()!
            if !first {
                // Release the waiter so the group can finish.
                let waiters = self.state.withLock { s in
                    defer { s.waiters.removeAll() }
                    return s.waiters.map(\.1)
                }
                for c in waiters { c.resume() }
            }
            group.cancelAll()
            return first
        }
    }
}

/// A value behind a lock that tasks can share (a `Mutex` cannot be captured by escaping closures).
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) { mutex = Mutex(value) }

    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}
