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

    /// The iterator of ``AsyncCompletionTimeoutSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline let lifetime: PumpLifetime<Base>
        @usableFromInline let timeout: Duration
        @usableFromInline let clock: C
        @usableFromInline var deadline: C.Instant? = nil
        @usableFromInline var done = false

        @inlinable init(lifetime: PumpLifetime<Base>, timeout: Duration, clock: C) {
            self.lifetime = lifetime
            self.timeout = timeout
            self.clock = clock
        }

        @inlinable public mutating func next() async throws -> Element? {
            if done { return nil }
            if deadline == nil { deadline = clock.now.advanced(by: timeout) }
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
                throw StreamKitError.completionTimeout(timeout)
            }
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
    @inlinable public func completionTimeout(_ timeout: Duration) -> AsyncCompletionTimeoutSequence<Self, ContinuousClock> {
        AsyncCompletionTimeoutSequence(base: self, timeout: timeout, clock: ContinuousClock())
    }
}
