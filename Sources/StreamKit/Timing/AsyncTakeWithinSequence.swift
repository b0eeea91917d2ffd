/// The elements of a base sequence that arrive within `duration` of the
/// first `next()`; then it completes normally: Akka's `takeWithin`.
///
/// The upstream runs in a reader task with a one-element look-ahead, so the
/// sequence ends on time even while the upstream is quiet; at the end (or
/// when the consumer stops) the upstream is cancelled.
public struct AsyncTakeWithinSequence<Base: AsyncSequence & Sendable, C: Clock>: AsyncSequence, Sendable
where Base.Element: Sendable, C: Sendable, C.Duration == Duration {
    public typealias Element = Base.Element
    public typealias Failure = any Error

    @usableFromInline let base: Base
    @usableFromInline let duration: Duration
    @usableFromInline let clock: C

    @inlinable init(base: Base, duration: Duration, clock: C) {
        self.base = base
        self.duration = duration
        self.clock = clock
    }

    @inlinable public func makeAsyncIterator() -> Iterator {
        Iterator(lifetime: PumpLifetime(Pump(base, capacity: 1)), duration: duration, clock: clock)
    }

    /// The iterator of ``AsyncTakeWithinSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline let lifetime: PumpLifetime<Base>
        @usableFromInline let duration: Duration
        @usableFromInline let clock: C
        @usableFromInline var deadline: C.Instant? = nil
        @usableFromInline var done = false

        @inlinable init(lifetime: PumpLifetime<Base>, duration: Duration, clock: C) {
            self.lifetime = lifetime
            self.duration = duration
            self.clock = clock
        }

        @inlinable public mutating func next() async throws -> Element? {
            if done { return nil }
            if deadline == nil { deadline = clock.now.advanced(by: duration) }
            switch await lifetime.pump.next(before: deadline, clock: clock, deadlineFirst: true) {
            case .element(let element):
                return element
            case .finished(let error):
                done = true
                if let error { throw error }
                return nil
            case .deadlinePassed:
                done = true
                lifetime.pump.cancel()
                return nil
            }
        }
    }
}

extension AsyncSequence where Self: Sendable, Element: Sendable {
    /// Passes elements for `duration`, then completes.
    ///
    /// ```swift
    /// let firstMinute = ticks.takeWithin(.seconds(60))
    /// ```
    @inlinable public func takeWithin<C: Clock>(
        _ duration: Duration, clock: C
    ) -> AsyncTakeWithinSequence<Self, C> where C.Duration == Duration {
        AsyncTakeWithinSequence(base: self, duration: duration, clock: clock)
    }

    /// ``takeWithin(_:clock:)`` on the continuous clock.
    @inlinable public func takeWithin(_ duration: Duration) -> AsyncTakeWithinSequence<Self, ContinuousClock> {
        AsyncTakeWithinSequence(base: self, duration: duration, clock: ContinuousClock())
    }
}
