import Synchronization

/// Runs `operation` (typically a call into an actor) and returns its answer, or throws
/// ``StreamKitError/askTimeout(_:)`` if it has not answered within `timeout` on `clock`:
/// Akka's `ask` with a timeout, for `mapAsync`.
///
/// ```swift
/// let solutions = problems.mapAsync(parallelism: 5) { problem in
///     try await ask(timeout: .seconds(2)) { try await solver.solve(problem) }
/// }
/// ```
/// On timeout the operation is cancelled and the call returns at once, even if the operation
/// ignores cancellation (it then finishes on its own, its answer discarded). Cancelling the
/// caller cancels the operation and throws `CancellationError`. An operation error is rethrown.
/// Costs two tasks per call: use it where a call may hang, not on a hot path that cannot.
public func ask<Answer: Sendable, C: Clock>(
    timeout: Duration, clock: C, _ operation: @escaping @Sendable () async throws -> Answer
) async throws -> Answer where C.Duration == Duration {
    let race = AskRace<Answer>()
    return try await withTaskCancellationHandler {
        try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Answer, any Error>) in
            race.begin(continuation)
            let work = Task {
                do { race.finish(.success(try await operation())) } catch { race.finish(.failure(error)) }
            }
            let timer = Task {
                do { try await clock.sleep(until: clock.now.advanced(by: timeout), tolerance: nil) } catch { return }
                race.finish(.failure(StreamKitError.askTimeout(timeout)))
            }
            race.own(work: work, timer: timer)
        }
    } onCancel: {
        race.finish(.failure(CancellationError()))
    }
}

/// ``ask(timeout:clock:_:)`` on the continuous clock.
public func ask<Answer: Sendable>(timeout: Duration, _ operation: @escaping @Sendable () async throws -> Answer)
    async throws -> Answer
{
    try await ask(timeout: timeout, clock: ContinuousClock(), operation)
}

extension Actor {
    /// Sends `message` to this actor (it runs isolated to it) and returns the answer, or throws
    /// ``StreamKitError/askTimeout(_:)`` after `timeout`; see ``ask(timeout:clock:_:)``.
    ///
    /// ```swift
    /// let solutions = problems.mapAsync(parallelism: 5) { problem in
    ///     try await solver.ask(timeout: .seconds(2)) { try await $0.solve(problem) }
    /// }
    /// ```
    public func ask<Answer: Sendable>(
        timeout: Duration, _ message: @escaping @Sendable (isolated Self) async throws -> Answer
    ) async throws -> Answer {
        try await StreamKit.ask(timeout: timeout, clock: ContinuousClock()) { try await message(self) }
    }
}

/// Who answers an ``ask(timeout:clock:_:)`` first: the operation, the timer or cancellation.
/// The first finisher resumes the caller and cancels the other tasks.
final class AskRace<Answer: Sendable>: Sendable {
    private struct State {
        var continuation: UnsafeContinuation<Answer, any Error>? = nil
        var outcome: Result<Answer, any Error>? = nil
        var tasks: [Task<Void, Never>] = []
        var done = false
    }

    private let state = Mutex(State())

    /// The caller waits with `continuation`; resumed at once if the race is already over (cancelled before it began).
    func begin(_ continuation: UnsafeContinuation<Answer, any Error>) {
        let outcome: Result<Answer, any Error>? = state.withLock { state in
            if let outcome = state.outcome { return outcome }
            state.continuation = continuation
            return nil
        }
        if let outcome { continuation.resume(with: outcome) }
    }

    /// Keeps the tasks to cancel when the race ends (at once if it already has).
    func own(work: Task<Void, Never>, timer: Task<Void, Never>) {
        let cancelNow = state.withLock { state in
            if state.done { return true }
            state.tasks = [work, timer]
            return false
        }
        if cancelNow {
            work.cancel()
            timer.cancel()
        }
    }

    func finish(_ outcome: Result<Answer, any Error>) {
        let (continuation, tasks): (UnsafeContinuation<Answer, any Error>?, [Task<Void, Never>]) = state.withLock {
            state in
            if state.done { return (nil, []) }
            state.done = true
            if state.continuation == nil { state.outcome = outcome }
            defer { state.tasks = [] }
            return (state.continuation.take(), state.tasks)
        }
        tasks.forEach { $0.cancel() }
        continuation?.resume(with: outcome)
    }
}
