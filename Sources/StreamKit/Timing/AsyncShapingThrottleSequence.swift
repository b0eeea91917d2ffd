/// A base sequence slowed to a rate: Akka's `throttle` in shaping mode. It
/// delays elements (back-pressure), it never drops them.
///
/// A token bucket holds up to `burst` units and refills at `cost` units per
/// `per`; each element costs `costOf(element)` units (1 by default). An
/// element waits until the bucket holds its cost (or, for an element costing
/// more than `burst`, until the bucket is full; the bucket then goes into
/// debt). Pull-through: the upstream is pulled only when the consumer asks,
/// at most one element is held. Cancelling the consumer ends the wait.
public struct AsyncShapingThrottleSequence<Base: AsyncSequence & Sendable, C: Clock>: AsyncSequence, Sendable
where Base.Element: Sendable, C: Sendable, C.Duration == Duration {
    public typealias Element = Base.Element
    public typealias Failure = any Error

    @usableFromInline let base: Base
    @usableFromInline let cost: Int
    @usableFromInline let per: Duration
    @usableFromInline let burst: Int
    @usableFromInline let clock: C
    @usableFromInline let costOf: @Sendable (Base.Element) -> Int

    @inlinable init(
        base: Base, cost: Int, per: Duration, burst: Int, clock: C, costOf: @escaping @Sendable (Base.Element) -> Int
    ) {
        self.base = base
        self.cost = cost
        self.per = per
        self.burst = burst
        self.clock = clock
        self.costOf = costOf
    }

    @inlinable public func makeAsyncIterator() -> Iterator {
        Iterator(base: base.makeAsyncIterator(), sequence: self)
    }

    /// The iterator of ``AsyncShapingThrottleSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline var base: Base.AsyncIterator
        @usableFromInline let sequence: AsyncShapingThrottleSequence
        /// Units in the bucket (negative after an element costing more than `burst`).
        @usableFromInline var tokens: Double = 0
        @usableFromInline var lastRefill: C.Instant? = nil

        @inlinable init(base: Base.AsyncIterator, sequence: AsyncShapingThrottleSequence) {
            self.base = base
            self.sequence = sequence
        }

        @inlinable public mutating func next() async throws -> Element? {
            guard sequence.cost >= 1, sequence.burst >= 1, sequence.per > .zero else {
                throw StreamKitError.invalidArgument(
                    "throttle(cost: \(sequence.cost), per: \(sequence.per), burst: \(sequence.burst)): cost and burst must be at least 1 and per positive"
                )
            }
            guard let element = try await base.next() else { return nil }
            let clock = sequence.clock
            let ratePerSecond = Double(sequence.cost) / Self.seconds(sequence.per)
            let capacity = Double(sequence.burst)
            if lastRefill == nil {
                lastRefill = clock.now
                tokens = capacity
            }
            let needed = Double(Swift.max(0, sequence.costOf(element)))
            let target = Swift.min(needed, capacity)
            refill(now: clock.now, rate: ratePerSecond, capacity: capacity)
            if tokens < target {
                let wait = (target - tokens) / ratePerSecond
                let deadline = lastRefill!.advanced(by: .nanoseconds(Int64((wait * 1e9).rounded(.up))))
                try await clock.sleep(until: deadline, tolerance: nil)
                refill(now: clock.now, rate: ratePerSecond, capacity: capacity)
                tokens = Swift.max(tokens, target) // rounding must not make it wait twice
            }
            tokens -= needed
            return element
        }

        @inlinable mutating func refill(now: C.Instant, rate: Double, capacity: Double) {
            guard let last = lastRefill else { return }
            let elapsed = Self.seconds(last.duration(to: now))
            if elapsed > 0 {
                tokens = Swift.min(capacity, tokens + elapsed * rate)
                lastRefill = now
            }
        }

        @inlinable static func seconds(_ duration: Duration) -> Double {
            let (seconds, attoseconds) = duration.components
            return Double(seconds) + Double(attoseconds) / 1e18
        }
    }
}

extension AsyncSequence where Self: Sendable, Element: Sendable {
    /// Slows this sequence to `cost` units per `per`, allowing bursts of up to
    /// `burst` units; each element costs `costOf(element)` (default 1).
    ///
    /// ```swift
    /// let polite = requests.throttle(cost: 100, per: .seconds(1), burst: 10)
    /// ```
    /// `cost` and `burst` must be at least 1 and `per` positive, else the first
    /// `next()` throws ``StreamKitError/invalidArgument(_:)``.
    @inlinable public func throttle<C: Clock>(
        cost: Int, per: Duration, burst: Int, clock: C,
        costOf: @escaping @Sendable (Element) -> Int = { _ in 1 }
    ) -> AsyncShapingThrottleSequence<Self, C> where C.Duration == Duration {
        AsyncShapingThrottleSequence(base: self, cost: cost, per: per, burst: burst, clock: clock, costOf: costOf)
    }

    /// ``throttle(cost:per:burst:clock:costOf:)`` on the continuous clock.
    @inlinable public func throttle(
        cost: Int, per: Duration, burst: Int,
        costOf: @escaping @Sendable (Element) -> Int = { _ in 1 }
    ) -> AsyncShapingThrottleSequence<Self, ContinuousClock> {
        AsyncShapingThrottleSequence(
            base: self, cost: cost, per: per, burst: burst, clock: ContinuousClock(), costOf: costOf)
    }
}
