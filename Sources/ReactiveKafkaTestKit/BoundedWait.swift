import ReactiveKafka
import Synchronization

/// Waits with a bound, so that a hang fails a test instead of hanging the suite.
public enum BoundedWait {
    /// Runs `operation` in a task of its own and waits for it at most `limit`; nil if it did
    /// not return by then. (A task group would wait for a hung child forever; this leaves it behind.)
    public static func within<T: Sendable>(_ limit: Duration, _ operation: @escaping @Sendable () async -> T) async
        -> T?
    {
        let once = ResumeOnce<T?>()
        return await withCheckedContinuation { (continuation: CheckedContinuation<T?, Never>) in
            once.set(continuation)
            Task { once.resume(returning: await operation()) }
            Task {
                try? await Task.sleep(for: limit)
                once.resume(returning: nil)
            }
        }
    }

    /// A continuation resumed by whichever comes first.
    private final class ResumeOnce<T: Sendable>: Sendable {
        private let continuation = Mutex<CheckedContinuation<T, Never>?>(nil)

        func set(_ continuation: CheckedContinuation<T, Never>) { self.continuation.withLock { $0 = continuation } }

        func resume(returning value: T) { continuation.withLock { $0.take() }?.resume(returning: value) }
    }
}

extension LagCollector {
    /// The first status (the current one included) for which `predicate` holds, published
    /// within `limit`; nil if none was. Needs the collector to be running (``run()``).
    public func firstStatus(within limit: Duration, where predicate: @escaping @Sendable (Status) -> Bool) async
        -> Status?
    {
        let statuses = statuses()
        let current = status
        if predicate(current) { return current }
        return await BoundedWait.within(limit) {
            for await status in statuses where predicate(status) { return status }
            return nil
        } ?? nil
    }
}
