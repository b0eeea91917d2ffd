/// A table's phase, its consumer, its restore and the tasks waiting for it to be ready:
/// the state behind ``KafkaTable``'s `run`, `ready` and `close` (kept under one lock).
struct TableLifecycle: Sendable {
    typealias Waiter = UnsafeContinuation<Result<Void, any Error>, Never>

    enum Phase: Sendable { case idle, running, ended }

    private(set) var phase = Phase.idle
    private(set) var closeRequested = false
    /// The consumer of the running table, stopped by ``KafkaTable/close()``.
    private(set) var control: ConsumerControl?
    var restore = TableRestore()
    /// How the table ended: nil while it runs; success for a close.
    private(set) var end: Result<Void, any Error>?
    private var waiters: [Int: Waiter] = [:]
    private var nextWaiter = 0

    /// Starts the run; false if it already ran or was closed.
    mutating func start() -> Bool {
        guard phase == .idle, !closeRequested else { return false }
        phase = .running
        return true
    }

    /// Keeps the running consumer; false (stop it) if the table is closing.
    mutating func attach(_ control: ConsumerControl) -> Bool {
        guard !closeRequested else { return false }
        self.control = control
        return true
    }

    /// Asks the table to end; returns the consumer to stop.
    mutating func close() -> ConsumerControl? {
        closeRequested = true
        return control
    }

    /// What a task asking for readiness gets now: a result, or nil to wait.
    func readiness() -> Result<Void, any Error>? {
        if restore.isComplete { return .success(()) }
        if let end {
            return end.flatMap {
                .failure(KafkaTableError(.closed, "the table was closed before its restore completed"))
            }
        }
        if closeRequested {
            return .failure(KafkaTableError(.closed, "the table was closed before its restore completed"))
        }
        return nil
    }

    /// An identity for a task about to wait (so its cancellation can find it).
    mutating func reserveWaiter() -> Int {
        nextWaiter += 1
        return nextWaiter
    }

    mutating func wait(_ waiter: Waiter, id: Int) { waiters[id] = waiter }

    mutating func cancelWait(_ id: Int) -> Waiter? { waiters.removeValue(forKey: id) }

    /// The restore completed (or the table ended): the waiters to resume.
    mutating func releaseWaiters() -> [Waiter] {
        defer { waiters = [:] }
        return Array(waiters.values)
    }

    /// The run ended with `failure` (nil: closed or cancelled); returns the waiters to resume.
    mutating func finish(_ failure: (any Error)?) -> [Waiter] {
        phase = .ended
        control = nil
        end = failure.map { .failure($0) } ?? .success(())
        return releaseWaiters()
    }
}
