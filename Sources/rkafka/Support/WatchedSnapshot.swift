import Synchronization

/// A value that threads update and tasks wait on: a waiter resumes as soon as an update
/// makes its condition true (no polling), or gives up after its timeout. The benchmarks'
/// recorders (and the tests' ledgers) keep what they saw in one.
final class WatchedSnapshot<Snapshot: Sendable>: Sendable {
    private struct Waiter {
        let condition: @Sendable (Snapshot) -> Bool
        let continuation: CheckedContinuation<Void, Never>
    }

    private struct State {
        var snapshot: Snapshot
        var waiters: [Int: Waiter] = [:]
        var nextWaiter = 0
    }

    private let state: Mutex<State>

    init(_ initial: Snapshot) {
        state = Mutex(State(snapshot: initial))
    }

    /// The value now.
    var snapshot: Snapshot { state.withLock { $0.snapshot } }

    /// Changes the value in place (no copy of it is made), then resumes the waiters whose
    /// condition now holds, outside the lock.
    @discardableResult
    func update<R>(_ body: (inout Snapshot) -> R) -> R {
        let (result, ready) = state.withLock { s -> (R, [CheckedContinuation<Void, Never>]) in
            let result = body(&s.snapshot)
            guard !s.waiters.isEmpty else { return (result, []) }
            let ready = s.waiters.filter { $0.value.condition(s.snapshot) }
            for id in ready.keys { s.waiters.removeValue(forKey: id) }
            return (result, ready.values.map(\.continuation))
        }
        for continuation in ready { continuation.resume() }
        return result
    }

    /// Suspends until `condition` holds (true) or `timeout` passed (false).
    func wait(timeout: Duration, until condition: @escaping @Sendable (Snapshot) -> Bool) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { await self.waitUntil(condition) }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
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
