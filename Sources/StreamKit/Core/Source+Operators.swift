import AsyncAlgorithms

/// StreamKit operators on ``Source`` that keep the materialized value.
/// Everything else is reachable through ``Source/transform(_:)``.
extension Source {
    /// Transforms each element with a synchronous function, keeping the materialized value.
    ///
    /// Chosen over the async `map` when the closure does not `await`: the call
    /// inlines into the consumer's loop (no async hop per element).
    @inlinable public func map<T: Sendable>(
        _ transform: @escaping @Sendable (Element) -> T
    ) -> Source<AsyncSyncMapSequence<Base, T>, Materialized> {
        Source<AsyncSyncMapSequence<Base, T>, Materialized>(
            AsyncSyncMapSequence(base: base, transform: transform), materialized: materialized)
    }

    /// The first `count` elements, keeping the materialized value: Akka Streams' `take`.
    ///
    /// Completes after `count` elements without pulling the upstream again. Prefer it to
    /// `transform { $0.prefix(count) }`, which runs unspecialised per element.
    @inlinable public func take(_ count: Int) -> Source<AsyncTakeSequence<Base>, Materialized> {
        Source<AsyncTakeSequence<Base>, Materialized>(base.take(count), materialized: materialized)
    }

    /// Keeps the elements a synchronous predicate accepts, keeping the materialized value.
    @inlinable public func filter(
        _ isIncluded: @escaping @Sendable (Element) -> Bool
    ) -> Source<AsyncSyncFilterSequence<Base>, Materialized> {
        Source<AsyncSyncFilterSequence<Base>, Materialized>(
            AsyncSyncFilterSequence(base: base, isIncluded: isIncluded), materialized: materialized)
    }

    /// ``_Concurrency/AsyncSequence/mapAsync(parallelism:_:)``, keeping the materialized value.
    @inlinable public func mapAsync<T: Sendable>(
        parallelism: Int, _ transform: @escaping @Sendable (Element) async throws -> T
    ) -> Source<AsyncMapAsyncSequence<Base, T>, Materialized> {
        Source<AsyncMapAsyncSequence<Base, T>, Materialized>(
            base.mapAsync(parallelism: parallelism, transform), materialized: materialized)
    }

    /// ``_Concurrency/AsyncSequence/mapAsyncUnordered(parallelism:_:)``, keeping the materialized value.
    @inlinable public func mapAsyncUnordered<T: Sendable>(
        parallelism: Int, _ transform: @escaping @Sendable (Element) async throws -> T
    ) -> Source<AsyncMapAsyncUnorderedSequence<Base, T>, Materialized> {
        Source<AsyncMapAsyncUnorderedSequence<Base, T>, Materialized>(
            base.mapAsyncUnordered(parallelism: parallelism, transform), materialized: materialized)
    }

    /// ``_Concurrency/AsyncSequence/groupedWithin(count:duration:clock:)``, keeping the materialized value.
    @inlinable public func groupedWithin<C: Clock>(
        count: Int, duration: Duration, clock: C
    ) -> Source<AsyncGroupedWithinSequence<Base, C>, Materialized> where C.Duration == Duration {
        Source<AsyncGroupedWithinSequence<Base, C>, Materialized>(
            base.groupedWithin(count: count, duration: duration, clock: clock), materialized: materialized)
    }

    /// ``_Concurrency/AsyncSequence/groupedWithin(count:duration:)``, keeping the materialized value.
    @inlinable public func groupedWithin(
        count: Int, duration: Duration
    ) -> Source<AsyncGroupedWithinSequence<Base, ContinuousClock>, Materialized> {
        groupedWithin(count: count, duration: duration, clock: ContinuousClock())
    }

    /// ``_Concurrency/AsyncSequence/buffer(size:overflow:statistics:)``, keeping the materialized value.
    @inlinable public func buffer(
        size: Int, overflow: OverflowStrategy, statistics: BufferStatistics? = nil
    ) -> Source<AsyncOverflowBufferSequence<Base>, Materialized> {
        Source<AsyncOverflowBufferSequence<Base>, Materialized>(
            base.buffer(size: size, overflow: overflow, statistics: statistics), materialized: materialized)
    }
}

extension Source {
    /// ``_Concurrency/AsyncSequence/throttle(cost:per:burst:clock:costOf:)``, keeping the materialized value.
    @inlinable public func throttle<C: Clock>(
        cost: Int, per: Duration, burst: Int, clock: C,
        costOf: @escaping @Sendable (Element) -> Int = { _ in 1 }
    ) -> Source<AsyncShapingThrottleSequence<Base, C>, Materialized> where C.Duration == Duration {
        Source<AsyncShapingThrottleSequence<Base, C>, Materialized>(
            base.throttle(cost: cost, per: per, burst: burst, clock: clock, costOf: costOf), materialized: materialized)
    }

    /// ``_Concurrency/AsyncSequence/throttle(cost:per:burst:costOf:)``, keeping the materialized value.
    @inlinable public func throttle(
        cost: Int, per: Duration, burst: Int,
        costOf: @escaping @Sendable (Element) -> Int = { _ in 1 }
    ) -> Source<AsyncShapingThrottleSequence<Base, ContinuousClock>, Materialized> {
        throttle(cost: cost, per: per, burst: burst, clock: ContinuousClock(), costOf: costOf)
    }
}

extension Source where Materialized == Void {
    /// A source over the elements of a synchronous sequence (a range, an array).
    ///
    /// ```swift
    /// let numbers = Source.from(1...100)
    /// ```
    /// Pull-through: each element is produced when the consumer asks for it.
    @inlinable public static func from<Elements: Sequence & Sendable>(
        _ elements: Elements
    ) -> Source<AsyncSyncSequence<Elements>, Void> where Base == AsyncSyncSequence<Elements> {
        Source(elements.async)
    }
}
