import Histogram
import Synchronization

/// The latencies of the records read back from a pipeline's output, per measuring point
/// (HdrHistogram, microseconds, 3 significant digits), and waits for a point's records.
/// The reader thread records a consumed batch at a time; the scenario reads and waits.
final class LatencyRecorder: Sendable {
    /// Latencies above this (2 minutes, in µs) are recorded as this.
    static let highestMicroseconds: UInt64 = 120_000_000

    /// One measuring point's records, as read so far.
    struct Point: Sendable {
        var count = 0
        var histogram = Histogram<UInt64>(
            lowestDiscernibleValue: 1, highestTrackableValue: LatencyRecorder.highestMicroseconds)
        /// When the reader consumed the point's first and last record (``LatencyClock`` nanoseconds).
        var firstRead: Int64 = 0
        var lastRead: Int64 = 0

        mutating func record(sent: Int64, readAt: Int64) {
            count += 1
            histogram.record(min(UInt64(max(0, readAt - sent) / 1000), LatencyRecorder.highestMicroseconds))
            lastRead = readAt
        }
    }

    struct Snapshot: Sendable {
        var points: [UInt32: Point] = [:]
        /// Records of point 0: warm-up and readiness records.
        var unmeasured = 0
        /// Values without a stamp (the connector's warm-up record).
        var unstamped = 0

        func count(of point: UInt32) -> Int { points[point]?.count ?? 0 }
    }

    private struct Waiter {
        let condition: @Sendable (Snapshot) -> Bool
        let continuation: CheckedContinuation<Void, Never>
    }

    private struct State {
        var snapshot = Snapshot()
        var waiters: [Int: Waiter] = [:]
        var nextWaiter = 0
    }

    private let state = Mutex(State())

    var snapshot: Snapshot { state.withLock { $0.snapshot } }

    /// Records one consumed batch: each stamp's latency up to `readAt`, and `unstamped` values.
    func record(readAt: Int64, stamps: UnsafeBufferPointer<(sent: Int64, point: UInt32)>, unstamped: Int) {
        let ready = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.snapshot.unstamped += unstamped
            for stamp in stamps {
                guard stamp.point != 0 else {
                    s.snapshot.unmeasured += 1
                    continue
                }
                // Modified in place: the histogram is not copied.
                s.snapshot.points[stamp.point, default: Point(firstRead: readAt)].record(
                    sent: stamp.sent, readAt: readAt)
            }
            let ready = s.waiters.filter { $0.value.condition(s.snapshot) }
            for id in ready.keys { s.waiters.removeValue(forKey: id) }
            return ready.values.map(\.continuation)
        }
        for continuation in ready { continuation.resume() }
    }

    /// Suspends until `condition` holds; throws a ``BenchError`` naming `what` after `timeout`.
    func wait(for what: String, timeout: Duration, until condition: @escaping @Sendable (Snapshot) -> Bool) async throws
    {
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
        guard reached else {
            let s = snapshot
            let counts = s.points.keys.sorted().map { "point \($0): \(s.points[$0]!.count)" }
            throw BenchError(
                "latency: no \(what) within \(timeout) (read: \(s.unmeasured) unmeasured, \(counts.joined(separator: ", ")))"
            )
        }
    }

    private func waitUntil(_ condition: @escaping @Sendable (Snapshot) -> Bool) async -> Bool {
        let id = state.withLock { s in
            defer { s.nextWaiter += 1 }
            return s.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = state.withLock { s -> Bool in
                    if condition(s.snapshot) || Task.isCancelled { return true }
                    s.waiters[id] = Waiter(condition: condition, continuation: continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.continuation.resume()
        }
        return condition(snapshot)
    }
}
