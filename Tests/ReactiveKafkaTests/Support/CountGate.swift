import Synchronization

/// A count that only grows, and tasks waiting for it to reach a target, without polling:
/// the waiting half of the tests' collectors (`Counter`, `OffsetLedger`, `CommittedResults`).
final class CountGate: Sendable {
    private let state = Mutex<(count: Int, waiters: [(target: Int, continuation: CheckedContinuation<Void, Never>)])>(
        (0, []))

    /// The count is now `count` (a lower count reported late is ignored): resumes every waiter it satisfies.
    func reached(_ count: Int) {
        let ready = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.count = max(s.count, count)
            let reached = s.count
            let ready = s.waiters.filter { $0.target <= reached }.map(\.continuation)
            s.waiters.removeAll { $0.target <= reached }
            return ready
        }
        for c in ready { c.resume() }
    }

    /// Suspends until the count reaches `target`; false after `timeout`.
    func wait(for target: Int, timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withCheckedContinuation { c in
                    let now = self.state.withLock { s -> Bool in
                        if s.count >= target { return true }
                        s.waiters.append((target, c))
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
            let first = await group.next() ?? false
            // Release the waiter so the group can finish.
            if !first { self.releaseAll() }
            group.cancelAll()
            return first
        }
    }

    private func releaseAll() {
        let all = state.withLock { s in
            defer { s.waiters.removeAll() }
            return s.waiters.map(\.continuation)
        }
        for c in all { c.resume() }
    }
}
