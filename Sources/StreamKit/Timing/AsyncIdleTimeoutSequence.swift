/// A base sequence that fails with ``StreamKitError/idleTimeout(_:)`` when no
/// element arrives for `timeout`: Akka's `idleTimeout`.
///
/// Time is measured from the start and from each element the consumer took;
/// an element waiting in the one-element look-ahead is not idleness. The
/// upstream runs in a reader task (so the timer can fire while it is
/// quiet); on timeout, or when the consumer stops, it is cancelled.
public struct AsyncIdleTimeoutSequence<Base: AsyncSequence & Sendable, C: Clock>: AsyncSequence, Sendable
where Base.Element: Sendable, C: Sendable, C.Duration == Duration {
    public typealias Element = Base.Element
    public typealias Failure = any Error

    @usableFromInline let base: Base
    @usableFromInline let timeout: Duration
    @usableFromInline let clock: C

    @inlinable init(base: Base, timeout: Duration, clock: C) {
        self.base = base
        self.timeout = timeout
        self.clock = clock
    }

    @inlinable public func makeAsyncIterator() -> Iterator {
        Iterator(lifetime: PumpLifetime(Pump(base, capacity: 1)), timeout: timeout, clock: clock)
    }

    /// The iterator of ``AsyncIdleTimeoutSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline let lifetime: PumpLifetime<Base>
        @usableFromInline let timeout: Duration
        @usableFromInline let clock: C
        @usableFromInline var done = false

        @inlinable init(lifetime: PumpLifetime<Base>, timeout: Duration, clock: C) {
            self.lifetime = lifetime
            self.timeout = timeout
            self.clock = clock
        }

        @inlinable public mutating func next() async throws -> Element? {
            if done { return nil }
            let deadline = clock.now.advanced(by: timeout)
            switch await lifetime.pump.next(before: deadline, clock: clock, deadlineFirst: false) {
            case .element(let element):
                return element
            case .finished(let error):
                done = true
                if let error { throw error }
                return nil
            case .deadlinePassed:
                done = true
                lifetime.pump.cancel()
                throw StreamKitError.idleTimeout(timeout)
            }
        }
    }
}

extension AsyncSequence where Self: Sendable, Element: Sendable {
    /// Fails with ``StreamKitError/idleTimeout(_:)`` if no element arrives for `timeout`.
    ///
    /// ```swift
    /// for try await tick in heartbeats.idleTimeout(.seconds(30)) { … }
    /// ```
    @inlinable public func idleTimeout<C: Clock>(
        _ timeout: Duration, clock: C
    ) -> AsyncIdleTimeoutSequence<Self, C> where C.Duration == Duration {
        AsyncIdleTimeoutSequence(base: self, timeout: timeout, clock: clock)
    }

    /// ``idleTimeout(_:clock:)`` on the continuous clock.
    @inlinable public func idleTimeout(_ timeout: Duration) -> AsyncIdleTimeoutSequence<Self, ContinuousClock> {
        AsyncIdleTimeoutSequence(base: self, timeout: timeout, clock: ContinuousClock())
    }
}
