import Dispatch
import Foundation
import Synchronization

/// A dedicated thread for librdkafka's blocking calls (a transactional producer's
/// `init_transactions`, `commit_transaction`, … block for up to the transaction timeout;
/// a ``MetadataClient``'s look-ups and its client's destruction block until answered), so
/// they never occupy a thread of Swift's cooperative pool or of Dispatch's global pool.
/// Calls run one at a time, in the order they were submitted; the thread sleeps on a
/// semaphore while there is nothing to do, and holds the object until ``stop()``: call it
/// when done.
final class BlockingCallThread: Sendable {
    private struct State {
        var jobs: [@Sendable () -> Void] = []
        var stopping = false
    }

    private let state = Mutex(State())
    private let signal = DispatchSemaphore(value: 0)

    /// Starts the thread, named `name` (at most 15 characters show on Linux).
    init(name: String) {
        let thread = Thread { [self] in
            while true {
                signal.wait()
                let (job, stop) = state.withLock { s -> ((@Sendable () -> Void)?, Bool) in
                    if s.jobs.isEmpty { return (nil, s.stopping) }
                    return (s.jobs.removeFirst(), false)
                }
                if let job { job() } else if stop { return }
            }
        }
        thread.name = name
        thread.start()
    }

    /// Runs `body` on the thread and returns its result; the calling task suspends meanwhile.
    /// After ``stop()`` the body runs on a new detached thread instead, so a late call still completes.
    func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<T, Never>) in
            let accepted = state.withLock { s -> Bool in
                guard !s.stopping else { return false }
                s.jobs.append { continuation.resume(returning: body()) }
                return true
            }
            if accepted {
                signal.signal()
            } else {
                Thread.detachNewThread { continuation.resume(returning: body()) }
            }
        }
    }

    /// Runs `body` on the thread without waiting for it (after ``stop()``, on a new detached thread).
    func submit(_ body: @escaping @Sendable () -> Void) {
        let accepted = state.withLock { s -> Bool in
            guard !s.stopping else { return false }
            s.jobs.append(body)
            return true
        }
        if accepted { signal.signal() } else { Thread.detachNewThread(body) }
    }

    /// Lets the thread finish the calls already submitted, then end.
    func stop() {
        let first = state.withLock { s -> Bool in
            defer { s.stopping = true }
            return !s.stopping
        }
        if first { signal.signal() }
    }

}
