/// A base sequence with an injected element whenever the upstream stays
/// quiet for `interval`: Akka's `keepAlive`.
///
/// Time is measured from the last element handed to the consumer (real or
/// injected). The upstream runs in a reader task with a one-element
/// look-ahead; cancelling the consumer cancels it. Errors and completion
/// pass through unchanged.
public struct AsyncKeepAliveSequence<Base: AsyncSequence & Sendable, C: Clock>: AsyncSequence, Sendable
where Base.Element: Sendable, C: Sendable, C.Duration == Duration {
    public typealias Element = Base.Element
    public typealias Failure = any Error

    @usableFromInline let race: DeadlineRace<Base, C>

    @inlinable init(base: Base, interval: Duration, clock: C, inject: @escaping @Sendable () -> Base.Element) {
        race = DeadlineRace(
            base: base, timeout: interval, clock: clock, measure: .sinceEachPull, outcome: .emit(inject))
    }

    @inlinable public func makeAsyncIterator() -> Iterator {
        Iterator(race: race.makeIterator())
    }

    /// The iterator of ``AsyncKeepAliveSequence``.
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
    /// Emits `inject()` whenever no element arrived for `interval`.
    ///
    /// ```swift
    /// let withHeartbeats = events.keepAlive(.seconds(15)) { .heartbeat }
    /// ```
    @inlinable public func keepAlive<C: Clock>(
        _ interval: Duration, clock: C, inject: @escaping @Sendable () -> Element
    ) -> AsyncKeepAliveSequence<Self, C> where C.Duration == Duration {
        AsyncKeepAliveSequence(base: self, interval: interval, clock: clock, inject: inject)
    }

    /// ``keepAlive(_:clock:inject:)`` on the continuous clock.
    @inlinable public func keepAlive(
        _ interval: Duration, inject: @escaping @Sendable () -> Element
    ) -> AsyncKeepAliveSequence<Self, ContinuousClock> {
        AsyncKeepAliveSequence(base: self, interval: interval, clock: ContinuousClock(), inject: inject)
    }
}
