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

    @usableFromInline let race: DeadlineRace<Base, C>

    @inlinable init(base: Base, timeout: Duration, clock: C) {
        race = DeadlineRace(
            base: base, timeout: timeout, clock: clock, measure: .sinceEachPull, outcome: .fail(.idleTimeout(timeout)))
    }

    @inlinable public func makeAsyncIterator() -> Iterator {
        Iterator(race: race.makeIterator())
    }

    /// The iterator of ``AsyncIdleTimeoutSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline var race: DeadlineRace<Base, C>.Iterator

        @inlinable init(race: DeadlineRace<Base, C>.Iterator) {
            self.race = race
        }

        @inlinable public mutating func next() async throws -> Element? {
            try await race.next()
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
