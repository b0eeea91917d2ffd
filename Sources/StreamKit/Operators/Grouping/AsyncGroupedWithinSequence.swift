/// Groups of consecutive elements, each closed when it holds `count`
/// elements or `duration` after its first element arrived, whichever comes
/// first: Akka's `groupedWithin`.
///
/// A reader task pulls the upstream into a buffer of at most `count` elements
/// so the timer can close a group while the upstream is quiet. Memory is
/// bounded by twice `count`. Empty groups are never emitted. The last partial
/// group is emitted when the upstream completes; an upstream error arrives
/// after it. Cancelling the consumer cancels the reader and the upstream.
public struct AsyncGroupedWithinSequence<Base: AsyncSequence & Sendable, C: Clock>: AsyncSequence, Sendable
where Base.Element: Sendable, C: Sendable, C.Duration == Duration {
    public typealias Element = [Base.Element]
    public typealias Failure = any Error

    @usableFromInline let base: Base
    @usableFromInline let count: Int
    @usableFromInline let duration: Duration
    @usableFromInline let clock: C

    @inlinable init(base: Base, count: Int, duration: Duration, clock: C) {
        self.base = base
        self.count = count
        self.duration = duration
        self.clock = clock
    }

    @inlinable public func makeAsyncIterator() -> Iterator {
        Iterator(
            count: count, duration: duration, clock: clock,
            lifetime: count >= 1 ? PumpLifetime(Pump(base, capacity: count)) : nil
        )
    }

    /// The iterator of ``AsyncGroupedWithinSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline let count: Int
        @usableFromInline let duration: Duration
        @usableFromInline let clock: C
        @usableFromInline let lifetime: PumpLifetime<Base>?
        @usableFromInline var carry: Base.Element? = nil
        @usableFromInline var pendingEnd: (any Error)?? = nil

        @inlinable init(count: Int, duration: Duration, clock: C, lifetime: PumpLifetime<Base>?) {
            self.count = count
            self.duration = duration
            self.clock = clock
            self.lifetime = lifetime
        }

        @inlinable public mutating func next() async throws -> [Base.Element]? {
            guard let lifetime else {
                throw StreamKitError.invalidArgument("groupedWithin(count: \(count)): count must be at least 1")
            }
            guard duration > .zero else {
                throw StreamKitError.invalidArgument("groupedWithin(duration: \(duration)): duration must be positive")
            }
            if let pendingEnd {
                self.pendingEnd = .some(nil)
                if let error = pendingEnd { throw error }
                return nil
            }
            var group: [Base.Element] = []
            var deadline: C.Instant? = nil
            if let carry {
                self.carry = nil
                group.reserveCapacity(count)
                group.append(carry)
                deadline = clock.now.advanced(by: duration)
                if group.count == count { return group }
            }
            while true {
                let event =
                    if let deadline {
                        await lifetime.pump.next(wakeAt: deadline, clock: clock)
                    } else {
                        await lifetime.pump.next()
                    }
                switch event {
                case .element(let element):
                    if let deadline, clock.now >= deadline {
                        // The window closed before this element was taken: it opens the next group.
                        carry = element
                        return group
                    }
                    if group.isEmpty {
                        group.reserveCapacity(count)
                        deadline = clock.now.advanced(by: duration)
                    }
                    group.append(element)
                    if group.count >= count { return group }
                case .tick:
                    if let deadline, clock.now >= deadline, !group.isEmpty { return group }
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
    /// Emits arrays of up to `count` elements, closing each array `duration`
    /// after its first element at the latest.
    ///
    /// ```swift
    /// let batches = events.groupedWithin(count: 500, duration: .milliseconds(100))
    /// ```
    /// `count` must be at least 1 and `duration` positive, else the first
    /// `next()` throws ``StreamKitError/invalidArgument(_:)``.
    @inlinable public func groupedWithin<C: Clock>(
        count: Int, duration: Duration, clock: C
    ) -> AsyncGroupedWithinSequence<Self, C> where C.Duration == Duration {
        AsyncGroupedWithinSequence(base: self, count: count, duration: duration, clock: clock)
    }

    /// ``groupedWithin(count:duration:clock:)`` on the continuous clock.
    @inlinable public func groupedWithin(
        count: Int, duration: Duration
    ) -> AsyncGroupedWithinSequence<Self, ContinuousClock> {
        AsyncGroupedWithinSequence(base: self, count: count, duration: duration, clock: ContinuousClock())
    }
}
