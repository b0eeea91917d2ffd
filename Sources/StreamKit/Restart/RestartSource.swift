/// Sources that restart the stream they wrap, with exponential backoff:
/// Akka's `RestartSource`.
public enum RestartSource {
    /// Runs `factory()`'s sequence; whenever it fails **or completes**, waits
    /// the backoff and runs a fresh one, until `maxRestarts` is exhausted
    /// (then the last failure is thrown, or the sequence completes).
    ///
    /// ```swift
    /// let ticks = RestartSource.withBackoff(.init(minBackoff: .seconds(1), maxBackoff: .seconds(30), randomFactor: 0.2)) {
    ///     connection.subscribe("ticks")
    /// }
    /// ```
    /// Elements of each run pass through in order; elements already emitted
    /// are not replayed. Cancelling the consumer cancels the current run and
    /// any backoff wait.
    @inlinable public static func withBackoff<Upstream: AsyncSequence, C: Clock>(
        _ settings: RestartSettings, clock: C, _ factory: @escaping @Sendable () -> Upstream
    ) -> AsyncRestartSequence<Upstream, C> where C.Duration == Duration {
        AsyncRestartSequence(settings: settings, clock: clock, restartOnCompletion: true, factory: factory)
    }

    /// ``withBackoff(_:clock:_:)`` on the continuous clock.
    @inlinable public static func withBackoff<Upstream: AsyncSequence>(
        _ settings: RestartSettings, _ factory: @escaping @Sendable () -> Upstream
    ) -> AsyncRestartSequence<Upstream, ContinuousClock> {
        withBackoff(settings, clock: ContinuousClock(), factory)
    }

    /// Like ``withBackoff(_:clock:_:)``, but restarts only on failure: a run
    /// that completes completes the whole sequence.
    @inlinable public static func onFailuresWithBackoff<Upstream: AsyncSequence, C: Clock>(
        _ settings: RestartSettings, clock: C, _ factory: @escaping @Sendable () -> Upstream
    ) -> AsyncRestartSequence<Upstream, C> where C.Duration == Duration {
        AsyncRestartSequence(settings: settings, clock: clock, restartOnCompletion: false, factory: factory)
    }

    /// ``onFailuresWithBackoff(_:clock:_:)`` on the continuous clock.
    @inlinable public static func onFailuresWithBackoff<Upstream: AsyncSequence>(
        _ settings: RestartSettings, _ factory: @escaping @Sendable () -> Upstream
    ) -> AsyncRestartSequence<Upstream, ContinuousClock> {
        onFailuresWithBackoff(settings, clock: ContinuousClock(), factory)
    }
}

/// A sequence re-created with backoff when it fails (or completes); see ``RestartSource``.
public struct AsyncRestartSequence<Upstream: AsyncSequence, C: Clock>: AsyncSequence where C.Duration == Duration {
    public typealias Element = Upstream.Element
    public typealias Failure = any Error

    @usableFromInline let settings: RestartSettings
    @usableFromInline let clock: C
    @usableFromInline let restartOnCompletion: Bool
    @usableFromInline let factory: @Sendable () -> Upstream
    /// When true after a run ended, the end is final (a restarted flow's upstream is over).
    @usableFromInline let isFinal: @Sendable () -> Bool

    @inlinable init(
        settings: RestartSettings, clock: C, restartOnCompletion: Bool,
        isFinal: @escaping @Sendable () -> Bool = { false }, factory: @escaping @Sendable () -> Upstream
    ) {
        self.settings = settings
        self.clock = clock
        self.restartOnCompletion = restartOnCompletion
        self.isFinal = isFinal
        self.factory = factory
    }

    @inlinable public func makeAsyncIterator() -> Iterator { Iterator(sequence: self) }

    /// The iterator of ``AsyncRestartSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline let sequence: AsyncRestartSequence
        @usableFromInline var current: Upstream.AsyncIterator? = nil
        @usableFromInline var restarts = 0
        @usableFromInline var runStarted: C.Instant? = nil
        @usableFromInline var emittedInRun = false
        @usableFromInline var done = false

        @inlinable init(sequence: AsyncRestartSequence) { self.sequence = sequence }

        @inlinable public mutating func next() async throws -> Element? {
            if done { return nil }
            try sequence.settings.validate()
            while true {
                if current == nil {
                    current = sequence.factory().makeAsyncIterator()
                    runStarted = sequence.clock.now
                    emittedInRun = false
                }
                var failure: (any Error)? = nil
                do {
                    if let element = try await current!.next() {
                        emittedInRun = true
                        return element
                    }
                    if !sequence.restartOnCompletion {
                        done = true
                        return nil
                    }
                } catch {
                    failure = error
                }
                current = nil
                if Task.isCancelled || sequence.isFinal() {
                    done = true
                    if let failure { throw failure }
                    return nil
                }
                // A healthy run (it emitted and lasted minBackoff) resets the backoff.
                if emittedInRun, let runStarted,
                    runStarted.duration(to: sequence.clock.now) >= sequence.settings.minBackoff
                {
                    restarts = 0
                }
                if let maxRestarts = sequence.settings.maxRestarts, restarts >= maxRestarts {
                    done = true
                    if let failure { throw failure }
                    return nil
                }
                let wait = sequence.settings.backoff(forRestart: restarts, random: Double.random(in: 0...1))
                restarts += 1
                do {
                    try await sequence.clock.sleep(until: sequence.clock.now.advanced(by: wait), tolerance: nil)
                } catch {
                    done = true
                    return nil // cancelled while backing off
                }
            }
        }
    }
}

extension AsyncRestartSequence: Sendable where C: Sendable {}
