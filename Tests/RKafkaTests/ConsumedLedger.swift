import Foundation
import Synchronization
import Testing

/// Which records of one topic the consumer processes have written, and how often: the
/// `rkafka consume --format json` lines of every process, counted per partition and offset.
/// Tests wait on it for progress (no polling: waiters are resumed as lines arrive).
final class ConsumedLedger: Sendable {
    struct Snapshot: Sendable {
        /// Times each offset was written, per partition.
        var seen: [[UInt16]]
        /// Distinct records written.
        var distinct = 0
        /// Lines written, duplicates included.
        var total = 0
        /// Lines written per process name.
        var perProcess: [String: Int] = [:]
        /// Lines that were not a record of the topic (should stay empty).
        var malformed: [String] = []
        /// Unterminated final lines of killed processes.
        var torn = 0

        /// Records written more than once.
        var duplicates: Int { total - distinct }

        /// Offsets below `ends[p]` that nobody wrote, up to `limit` of them, as "partition:offset".
        func missing(ends: [Int64], limit: Int = 10) -> (count: Int, sample: [String]) {
            var count = 0
            var sample: [String] = []
            for (p, end) in ends.enumerated() {
                for offset in 0..<Int(end) where offset >= seen[p].count || seen[p][offset] == 0 {
                    count += 1
                    if sample.count < limit { sample.append("\(p):\(offset)") }
                }
            }
            return (count, sample)
        }

        /// Some duplicated records, as "partition:offset×times".
        func duplicatedSample(limit: Int = 10) -> [String] {
            var sample: [String] = []
            for (p, counts) in seen.enumerated() {
                for (offset, times) in counts.enumerated() where times > 1 {
                    sample.append("\(p):\(offset)×\(times)")
                    if sample.count == limit { return sample }
                }
            }
            return sample
        }
    }

    private struct State {
        var snapshot: Snapshot
        var waiters: [Int: (condition: @Sendable (Snapshot) -> Bool, continuation: CheckedContinuation<Void, Never>)] =
            [:]
        var nextWaiter = 0
    }

    private let topic: String
    private let state: Mutex<State>

    init(topic: String, partitions: Int) {
        self.topic = topic
        self.state = Mutex(State(snapshot: Snapshot(seen: Array(repeating: [], count: partitions))))
    }

    var snapshot: Snapshot { state.withLock { $0.snapshot } }

    /// Records the JSON lines `process` wrote.
    func add(_ lines: [Substring], from process: String) {
        var parsed: [(Int, Int)] = []
        var malformed: [String] = []
        parsed.reserveCapacity(lines.count)
        for line in lines {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                object["topic"] as? String == topic,
                let partition = object["partition"] as? Int, let offset = object["offset"] as? Int, offset >= 0
            else {
                malformed.append(String(line.prefix(200)))
                continue
            }
            parsed.append((partition, offset))
        }
        let ready = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            for (partition, offset) in parsed {
                guard partition >= 0, partition < s.snapshot.seen.count else {
                    s.snapshot.malformed.append("partition \(partition) out of range")
                    continue
                }
                if s.snapshot.seen[partition].count <= offset {
                    s.snapshot.seen[partition].append(
                        contentsOf: repeatElement(0, count: offset + 1 - s.snapshot.seen[partition].count))
                }
                if s.snapshot.seen[partition][offset] == 0 { s.snapshot.distinct += 1 }
                s.snapshot.seen[partition][offset] &+= 1
                s.snapshot.total += 1
            }
            s.snapshot.perProcess[process, default: 0] += parsed.count
            s.snapshot.malformed.append(contentsOf: malformed)
            return takeReady(&s)
        }
        for continuation in ready { continuation.resume() }
    }

    /// Counts an unterminated final line of a killed process (its records are not committed,
    /// so they are read again by another member).
    func addTornLine() {
        state.withLock { $0.snapshot.torn += 1 }
    }

    /// Suspends until `condition` holds, at most `timeout`; records an issue naming `what` and
    /// returns false on timeout.
    @discardableResult
    func wait(
        for what: String, timeout: Duration, sourceLocation: SourceLocation = #_sourceLocation,
        until condition: @escaping @Sendable (Snapshot) -> Bool
    ) async -> Bool {
        let reached = await withTaskGroup(of: Bool.self) { group in
            group.addTask { await self.waitUntil(condition) }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        if !reached {
            let s = snapshot
            Issue.record(
                "timed out after \(timeout) waiting for \(what): \(s.distinct) distinct records, \(s.total) lines, per process \(s.perProcess)",
                sourceLocation: sourceLocation)
        }
        return reached
    }

    private func waitUntil(_ condition: @escaping @Sendable (Snapshot) -> Bool) async -> Bool {
        let id = state.withLock { s in
            defer { s.nextWaiter += 1 }
            return s.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { c in
                let now = state.withLock { s -> Bool in
                    if condition(s.snapshot) || Task.isCancelled { return true }
                    s.waiters[id] = (condition, c)
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.continuation.resume()
        }
        return condition(snapshot)
    }

    private func takeReady(_ s: inout State) -> [CheckedContinuation<Void, Never>] {
        let ready = s.waiters.filter { $0.value.condition(s.snapshot) }
        for id in ready.keys { s.waiters.removeValue(forKey: id) }
        return ready.values.map(\.continuation)
    }
}
