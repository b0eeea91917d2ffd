/// A base sequence that fails with ``StreamKitError/initialTimeout(_:)``
/// unless its first element arrives within `timeout`: Akka's `initialTimeout`.
///
/// After the first element it passes everything through unchanged (still via
/// the one-element look-ahead reader task). On timeout, or when the consumer
/// stops, the upstream is cancelled.
public struct AsyncInitialTimeoutSequence<Base: AsyncSequence & Sendable, C: Clock>: AsyncSequence, Sendable
where Base.Element: Sendable, C: Sendable, C.Duration == Duration {
    public typealias Element = Base.Element
    public typealias Failure = any Error

    @usableFromInline let race: DeadlineRace<Base, C>

    @inlinable init(base: Base, timeout: Duration, clock: C) {
        race = DeadlineRace(
            base: base, timeout: timeout, clock: clock, measure: .untilFirstElement,
            outcome: .fail(.initialTimeout(timeout)))
    }

    @inlinable public func makeAsyncIterator() -> Iterator {
        Iterator(race: race.makeIterator())
    }

    /// The iterator of ``AsyncInitialTimeoutSequence``.
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
    /// Fails with ``StreamKitError/initialTimeout(_:)`` unless the first element arrives within `timeout`.
    ///
    /// ```swift
    /// for try await reply in responses.initialTimeout(.seconds(5)) { … }
    /// ```
    @inlinable public func initialTimeout<C: Clock>(
        _ timeout: Duration, clock: C
    ) -> AsyncInitialTimeoutSequence<Self, C> where C.Duration == Duration {
        AsyncInitialTimeoutSequence(base: self, timeout: timeout, clock: clock)
    }

    /// ``initialTimeout(_:clock:)`` on the continuous clock.
    @inlinable public func initialTimeout(_ timeout: Duration) -> AsyncInitialTimeoutSequence<Self, ContinuousClock> {
        AsyncInitialTimeoutSequence(base: self, timeout: timeout, clock: ContinuousClock())
    }
}
