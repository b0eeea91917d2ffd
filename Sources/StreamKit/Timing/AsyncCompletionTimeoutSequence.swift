/// A base sequence that fails with ``StreamKitError/completionTimeout(_:)``
/// unless it completes within `timeout` of the first `next()`: Akka's
/// `completionTimeout`.
///
/// The deadline wins over elements still waiting. The upstream runs in a
/// reader task with a one-element look-ahead; on timeout, or when the
/// consumer stops, it is cancelled.
public struct AsyncCompletionTimeoutSequence<Base: AsyncSequence & Sendable, C: Clock>: AsyncSequence, Sendable
where Base.Element: Sendable, C: Sendable, C.Duration == Duration {
    public typealias Element = Base.Element
    public typealias Failure = any Error

    @usableFromInline let race: DeadlineRace<Base, C>

    @inlinable init(base: Base, timeout: Duration, clock: C) {
        race = DeadlineRace(
            base: base, timeout: timeout, clock: clock, measure: .sinceFirstPull,
            outcome: .fail(.completionTimeout(timeout)))
    }

    @inlinable public func makeAsyncIterator() -> Iterator {
        Iterator(race: race.makeIterator())
    }

    /// The iterator of ``AsyncCompletionTimeoutSequence``.
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
    /// Fails with ``StreamKitError/completionTimeout(_:)`` unless the sequence completes within `timeout`.
    ///
    /// ```swift
    /// let snapshot = try await Array(partitionDump.completionTimeout(.seconds(10)))
    /// ```
    @inlinable public func completionTimeout<C: Clock>(
        _ timeout: Duration, clock: C
    ) -> AsyncCompletionTimeoutSequence<Self, C> where C.Duration == Duration {
        AsyncCompletionTimeoutSequence(base: self, timeout: timeout, clock: clock)
    }

    /// ``completionTimeout(_:clock:)`` on the continuous clock.
    @inlinable public func completionTimeout(_ timeout: Duration) -> AsyncCompletionTimeoutSequence<
        Self, ContinuousClock
    > {
        AsyncCompletionTimeoutSequence(base: self, timeout: timeout, clock: ContinuousClock())
    }
}
