import Synchronization

/// Counts processed records and lets the demo wait, without polling, until a
/// target count is reached.
final class DemoCounter: Sendable {
    private struct State {
        var count = 0
        var waiters: [(target: Int, continuation: CheckedContinuation<Bool, Never>)] = []
    }

    private let state = Mutex(State())

    /// The count so far.
    var value: Int { state.withLock { $0.count } }

    /// Adds `n` and wakes waiters whose target is reached.
    func add(_ n: Int = 1) {
        let ready = state.withLock { s -> [CheckedContinuation<Bool, Never>] in
            s.count += n
            guard !s.waiters.isEmpty else { return [] }
            let count = s.count
            let ready = s.waiters.filter { $0.target <= count }.map(\.continuation)
            s.waiters.removeAll { $0.target <= count }
            return ready
        }
        for continuation in ready { continuation.resume(returning: true) }
    }

    /// Suspends until the count reaches `target` (true) or `timeout` passes (false).
    func wait(for target: Int, timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let now = self.state.withLock { s -> Bool in
                        if s.count >= target { return true }
                        s.waiters.append((target, continuation))
                        return false
                    }
                    if now { continuation.resume(returning: true) }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let reached = await group.next() ?? false
            if !reached { releaseWaiters() }
            group.cancelAll()
            return reached
        }
    }

    private func releaseWaiters() {
        let all = state.withLock { s in
            defer { s.waiters.removeAll() }
            return s.waiters.map(\.continuation)
        }
        for continuation in all { continuation.resume(returning: false) }
    }
}
