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

    /// The iterator of ``AsyncInitialTimeoutSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline let lifetime: PumpLifetime<Base>
        @usableFromInline let timeout: Duration
        @usableFromInline let clock: C
        @usableFromInline var sawFirst = false
        @usableFromInline var done = false

        @inlinable init(lifetime: PumpLifetime<Base>, timeout: Duration, clock: C) {
            self.lifetime = lifetime
            self.timeout = timeout
            self.clock = clock
        }

        @inlinable public mutating func next() async throws -> Element? {
            if done { return nil }
            let deadline: C.Instant? = sawFirst ? nil : clock.now.advanced(by: timeout)
            switch await lifetime.pump.next(before: deadline, clock: clock, deadlineFirst: false) {
            case .element(let element):
                sawFirst = true
                return element
            case .finished(let error):
                done = true
                if let error { throw error }
                return nil
            case .deadlinePassed:
                done = true
                lifetime.pump.cancel()
                throw StreamKitError.initialTimeout(timeout)
            }
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
