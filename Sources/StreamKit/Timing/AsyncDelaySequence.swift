/// A base sequence with every element shifted `delay` later than it
/// arrived: Akka's `delay`.
///
/// A reader task pulls the upstream and stamps each element's arrival; the
/// consumer gets it once `arrival + delay` is reached, so elements arriving
/// while others wait are not delayed twice. At most `bufferSize` elements
/// wait (then the reader stops pulling: back-pressure). Order is kept; an
/// upstream error arrives after the elements before it, without delay of its
/// own. Cancelling the consumer cancels the upstream and any wait.
public struct AsyncDelaySequence<Base: AsyncSequence & Sendable, C: Clock>: AsyncSequence, Sendable
where Base.Element: Sendable, C: Sendable, C.Duration == Duration, C.Instant: Sendable {
    /// The upstream's elements, unchanged.
    public typealias Element = Base.Element
    /// The error the sequence may end with.
    public typealias Failure = any Error
    @usableFromInline typealias Stamped = AsyncSyncMapSequence<Base, (C.Instant, Base.Element)>

    @usableFromInline let base: Base
    @usableFromInline let delay: Duration
    @usableFromInline let bufferSize: Int
    @usableFromInline let clock: C

    @inlinable init(base: Base, delay: Duration, bufferSize: Int, clock: C) {
        self.base = base
        self.delay = delay
        self.bufferSize = bufferSize
        self.clock = clock
    }

    /// Makes the iterator that produces this sequence's elements.
    @inlinable public func makeAsyncIterator() -> Iterator {
        let clock = self.clock
        let stamped = AsyncSyncMapSequence(base: base) { (clock.now, $0) }
        return Iterator(lifetime: PumpLifetime(Pump(stamped, capacity: bufferSize)), delay: delay, clock: clock)
    }

    /// The iterator of ``AsyncDelaySequence``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline let lifetime: PumpLifetime<Stamped>
        @usableFromInline let delay: Duration
        @usableFromInline let clock: C

        @inlinable init(lifetime: PumpLifetime<Stamped>, delay: Duration, clock: C) {
            self.lifetime = lifetime
            self.delay = delay
            self.clock = clock
        }

        /// The next element, or `nil` once the sequence has ended.
        @inlinable public mutating func next() async throws -> Element? {
            while true {
                switch await lifetime.pump.next() {
                case .element(let (arrival, element)):
                    try await clock.sleep(until: arrival.advanced(by: delay), tolerance: nil)
                    return element
                case .finished(let error):
                    if let error { throw error }
                    return nil
                case .tick:
                    continue
                }
            }
        }
    }
}

extension AsyncSequence where Self: Sendable, Element: Sendable {
    /// Emits each element `delay` after it arrived, holding at most `bufferSize` waiting elements.
    ///
    /// ```swift
    /// let retries = failed.delay(.seconds(5))
    /// ```
    @inlinable public func delay<C: Clock>(
        _ delay: Duration, bufferSize: Int = 16, clock: C
    ) -> AsyncDelaySequence<Self, C> where C.Duration == Duration, C.Instant: Sendable {
        AsyncDelaySequence(base: self, delay: delay, bufferSize: bufferSize, clock: clock)
    }

    /// ``delay(_:bufferSize:clock:)`` on the continuous clock.
    @inlinable public func delay(_ delay: Duration, bufferSize: Int = 16) -> AsyncDelaySequence<Self, ContinuousClock> {
        AsyncDelaySequence(base: self, delay: delay, bufferSize: bufferSize, clock: ContinuousClock())
    }
}
