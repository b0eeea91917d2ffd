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

    @usableFromInline let base: Base
    @usableFromInline let interval: Duration
    @usableFromInline let clock: C
    @usableFromInline let inject: @Sendable () -> Base.Element

    @inlinable init(base: Base, interval: Duration, clock: C, inject: @escaping @Sendable () -> Base.Element) {
        self.base = base
        self.interval = interval
        self.clock = clock
        self.inject = inject
    }

    @inlinable public func makeAsyncIterator() -> Iterator {
        Iterator(lifetime: PumpLifetime(Pump(base, capacity: 1)), interval: interval, clock: clock, inject: inject)
    }

    /// The iterator of ``AsyncKeepAliveSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline let lifetime: PumpLifetime<Base>
        @usableFromInline let interval: Duration
        @usableFromInline let clock: C
        @usableFromInline let inject: @Sendable () -> Base.Element
        @usableFromInline var done = false

        @inlinable init(lifetime: PumpLifetime<Base>, interval: Duration, clock: C, inject: @escaping @Sendable () -> Base.Element) {
            self.lifetime = lifetime
            self.interval = interval
            self.clock = clock
            self.inject = inject
        }

        @inlinable public mutating func next() async throws -> Element? {
            if done { return nil }
            let deadline = clock.now.advanced(by: interval)
            switch await lifetime.pump.next(before: deadline, clock: clock, deadlineFirst: false) {
            case .element(let element):
                return element
            case .finished(let error):
                done = true
                if let error { throw error }
                return nil
            case .deadlinePassed:
                return inject()
            }
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
