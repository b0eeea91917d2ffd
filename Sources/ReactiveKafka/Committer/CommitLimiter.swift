import Synchronization

/// Bounds the commits in flight and wakes the idle timer when offsets arrive.
final class CommitLimiter: Sendable {
    private struct State {
        var inFlight = 0
        var permitWaiters: [UnsafeContinuation<Void, Never>] = []
        var activityWaiter: UnsafeContinuation<Void, Never>?
        /// Activity signalled while the timer was not yet waiting: its next wait returns at once.
        var activityPending = false
    }

    private let limit: Int
    private let state = Mutex(State())

    init(limit: Int) { self.limit = limit }

    /// Waits until fewer than `limit` commits are in flight, then takes a slot.
    func acquire() async {
        await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
            let granted = state.withLock { s -> Bool in
                if s.inFlight < limit {
                    s.inFlight += 1
                    return true
                }
                s.permitWaiters.append(c)
                return false
            }
            if granted { c.resume() }
        }
    }

    func release() {
        let next = state.withLock { s -> UnsafeContinuation<Void, Never>? in
            if s.permitWaiters.isEmpty {
                s.inFlight -= 1
                return nil
            }
            return s.permitWaiters.removeFirst() // the slot passes to the waiter
        }
        next?.resume()
    }

    /// Suspends the timer until an offset arrives (cancellation-safe).
    func waitForActivity() async {
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if Task.isCancelled || s.activityPending {
                        s.activityPending = false
                        return true
                    }
                    s.activityWaiter = c
                    return false
                }
                if resumeNow { c.resume() }
            }
        } onCancel: {
            signalActivity()
        }
    }

    func signalActivity() {
        let waiter = state.withLock { s -> UnsafeContinuation<Void, Never>? in
            defer { s.activityWaiter = nil }
            if s.activityWaiter == nil { s.activityPending = true }
            return s.activityWaiter
        }
        waiter?.resume()
    }
}
