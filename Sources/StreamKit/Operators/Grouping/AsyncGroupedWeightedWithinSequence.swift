/// Groups of consecutive elements whose total `cost` stays within `weight`,
/// each closed when the next element would exceed `weight` or `duration`
/// after its first element arrived: Akka's `groupedWeightedWithin`.
///
/// An element costing more than `weight` on its own forms a group by itself.
/// The reader task looks ahead by at most one element, so memory is bounded
/// by one group plus one element. Completion, errors and cancellation behave
/// as in ``AsyncGroupedWithinSequence``.
public struct AsyncGroupedWeightedWithinSequence<Base: AsyncSequence & Sendable, C: Clock>: AsyncSequence, Sendable
where Base.Element: Sendable, C: Sendable, C.Duration == Duration {
    public typealias Element = [Base.Element]
    public typealias Failure = any Error

    @usableFromInline let base: Base
    @usableFromInline let weight: Int
    @usableFromInline let duration: Duration
    @usableFromInline let clock: C
    @usableFromInline let cost: @Sendable (Base.Element) -> Int

    @inlinable init(
        base: Base, weight: Int, duration: Duration, clock: C, cost: @escaping @Sendable (Base.Element) -> Int
    ) {
        self.base = base
        self.weight = weight
        self.duration = duration
        self.clock = clock
        self.cost = cost
    }

    @inlinable public func makeAsyncIterator() -> Iterator {
        Iterator(sequence: self, lifetime: PumpLifetime(Pump(base, capacity: 1)))
    }

    /// The iterator of ``AsyncGroupedWeightedWithinSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline let sequence: AsyncGroupedWeightedWithinSequence
        @usableFromInline let lifetime: PumpLifetime<Base>
        @usableFromInline var carry: Base.Element? = nil
        @usableFromInline var pendingEnd: (any Error)?? = nil

        @inlinable init(sequence: AsyncGroupedWeightedWithinSequence, lifetime: PumpLifetime<Base>) {
            self.sequence = sequence
            self.lifetime = lifetime
        }

        @inlinable public mutating func next() async throws -> [Base.Element]? {
            guard sequence.weight >= 1 else {
                throw StreamKitError.invalidArgument(
                    "groupedWeightedWithin(weight: \(sequence.weight)): weight must be at least 1")
            }
            guard sequence.duration > .zero else {
                throw StreamKitError.invalidArgument(
                    "groupedWeightedWithin(duration: \(sequence.duration)): duration must be positive")
            }
            if let pendingEnd {
                self.pendingEnd = .some(nil)
                if let error = pendingEnd { throw error }
                return nil
            }
            var group: [Base.Element] = []
            var total = 0
            var deadline: C.Instant? = nil
            func add(_ element: Base.Element, cost: Int) {
                if group.isEmpty { deadline = sequence.clock.now.advanced(by: sequence.duration) }
                group.append(element)
                total += cost
            }
            if let carry {
                self.carry = nil
                let cost = sequence.cost(carry)
                add(carry, cost: cost)
                if total >= sequence.weight { return group }
            }
            while true {
                let event =
                    if let deadline {
                        await lifetime.pump.next(wakeAt: deadline, clock: sequence.clock)
                    } else {
                        await lifetime.pump.next()
                    }
                switch event {
                case .element(let element):
                    if let deadline, sequence.clock.now >= deadline {
                        carry = element
                        return group
                    }
                    let cost = Swift.max(0, sequence.cost(element))
                    if !group.isEmpty && total + cost > sequence.weight {
                        carry = element
                        return group
                    }
                    add(element, cost: cost)
                    if total >= sequence.weight { return group }
                case .tick:
                    if let deadline, sequence.clock.now >= deadline, !group.isEmpty { return group }
                case .finished(let error):
                    if group.isEmpty {
                        pendingEnd = .some(nil)
                        if let error { throw error }
                        return nil
                    }
                    pendingEnd = .some(error)
                    return group
                }
            }
        }
    }
}

extension AsyncSequence where Self: Sendable, Element: Sendable {
    /// Emits arrays whose summed `cost` is at most `weight`, closing each
    /// array `duration` after its first element at the latest.
    ///
    /// ```swift
    /// let batches = records.groupedWeightedWithin(weight: 1 << 20, duration: .milliseconds(50)) { $0.bytes.count }
    /// ```
    @inlinable public func groupedWeightedWithin<C: Clock>(
        weight: Int, duration: Duration, clock: C, cost: @escaping @Sendable (Element) -> Int
    ) -> AsyncGroupedWeightedWithinSequence<Self, C> where C.Duration == Duration {
        AsyncGroupedWeightedWithinSequence(base: self, weight: weight, duration: duration, clock: clock, cost: cost)
    }

    /// ``groupedWeightedWithin(weight:duration:clock:cost:)`` on the continuous clock.
    @inlinable public func groupedWeightedWithin(
        weight: Int, duration: Duration, cost: @escaping @Sendable (Element) -> Int
    ) -> AsyncGroupedWeightedWithinSequence<Self, ContinuousClock> {
        AsyncGroupedWeightedWithinSequence(
            base: self, weight: weight, duration: duration, clock: ContinuousClock(), cost: cost)
    }
}
