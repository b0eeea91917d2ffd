/// The elements of a base sequence that arrive within `duration` of the
/// first `next()`; then it completes normally: Akka's `takeWithin`.
///
/// The upstream runs in a reader task with a one-element look-ahead, so the
/// sequence ends on time even while the upstream is quiet; at the end (or
/// when the consumer stops) the upstream is cancelled.
public struct AsyncTakeWithinSequence<Base: AsyncSequence & Sendable, C: Clock>: AsyncSequence, Sendable
where Base.Element: Sendable, C: Sendable, C.Duration == Duration {
    /// The upstream's elements, unchanged.
    public typealias Element = Base.Element
    /// The error the sequence may end with.
    public typealias Failure = any Error

    @usableFromInline let race: DeadlineRace<Base, C>

    @inlinable init(base: Base, duration: Duration, clock: C) {
        race = DeadlineRace(base: base, timeout: duration, clock: clock, measure: .sinceFirstPull, outcome: .complete)
    }

    /// Makes the iterator that produces this sequence's elements.
    @inlinable public func makeAsyncIterator() -> Iterator {
        Iterator(race: race.makeIterator())
    }

    /// The iterator of ``AsyncTakeWithinSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline var race: DeadlineRace<Base, C>.Iterator

        @inlinable init(race: DeadlineRace<Base, C>.Iterator) {
            self.race = race
        }

        /// The next element, or `nil` once the sequence has ended.
        @inlinable public mutating func next() async throws -> Element? {
            try await race.next()
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
