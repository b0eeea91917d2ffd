import Synchronization

/// A base sequence whose elements are folded into aggregates while the
/// consumer is slower than the upstream: Akka's `batch` (and, with no limit,
/// `conflate`).
///
/// A reader task pulls the upstream and folds each element into the pending
/// aggregate (`seed` starts one, `aggregate` extends it); the consumer gets
/// whatever has accumulated each time it asks. With `max`, the reader stops
/// pulling once `max` elements are folded in and waits for the consumer
/// (back-pressure); without it (`conflate`) the upstream is never held back.
/// Memory: one aggregate. An upstream error arrives after the last
/// aggregate; cancelling the consumer cancels the upstream.
public struct AsyncBatchSequence<Base: AsyncSequence & Sendable, Aggregate: Sendable>: AsyncSequence, Sendable
where Base.Element: Sendable {
    public typealias Element = Aggregate
    public typealias Failure = any Error

    @usableFromInline let base: Base
    @usableFromInline let max: Int
    @usableFromInline let seed: @Sendable (Base.Element) -> Aggregate
    @usableFromInline let aggregate: @Sendable (Aggregate, Base.Element) -> Aggregate

    @inlinable init(
        base: Base, max: Int, seed: @escaping @Sendable (Base.Element) -> Aggregate,
        aggregate: @escaping @Sendable (Aggregate, Base.Element) -> Aggregate
    ) {
        self.base = base
        self.max = max
        self.seed = seed
        self.aggregate = aggregate
    }

    @inlinable public func makeAsyncIterator() -> Iterator {
        Iterator(
            max: max,
            lifetime: max >= 1
                ? BatchLifetime(BatchStorage(base: base, max: max, seed: seed, aggregate: aggregate)) : nil)
    }

    /// The iterator of ``AsyncBatchSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline let max: Int
        @usableFromInline let lifetime: BatchLifetime<Base, Aggregate>?

        @inlinable init(max: Int, lifetime: BatchLifetime<Base, Aggregate>?) {
            self.max = max
            self.lifetime = lifetime
        }

        @inlinable public mutating func next() async throws -> Aggregate? {
            guard let lifetime else {
                throw StreamKitError.invalidArgument("batch(max: \(max)): max must be at least 1")
            }
            return try await lifetime.storage.next()
        }
    }
}

/// The async shell of ``AsyncBatchSequence``.
@usableFromInline final class BatchStorage<Base: AsyncSequence & Sendable, Aggregate: Sendable>: Sendable
where Base.Element: Sendable {
    @usableFromInline typealias Machine = BatchStateMachine<Aggregate>
    @usableFromInline let state: Mutex<Machine>
    @usableFromInline let base: Base
    @usableFromInline let seed: @Sendable (Base.Element) -> Aggregate
    @usableFromInline let aggregate: @Sendable (Aggregate, Base.Element) -> Aggregate
    @usableFromInline let readerTask = Mutex<Task<Void, Never>?>(nil)

    @inlinable init(
        base: Base, max: Int, seed: @escaping @Sendable (Base.Element) -> Aggregate,
        aggregate: @escaping @Sendable (Aggregate, Base.Element) -> Aggregate
    ) {
        self.base = base
        self.seed = seed
        self.aggregate = aggregate
        self.state = Mutex(Machine(max: max))
    }

    @inlinable func next() async throws -> Aggregate? {
        let start = state.withLock { state -> Bool in
            defer { state.started = true }
            return !state.started && !state.cancelled
        }
        if start {
            let task = Task { await self.read() }
            readerTask.withLock { $0 = task }
            if state.withLock({ $0.cancelled }) { task.cancel() }
        }
        let result: Result<Aggregate?, any Error>
        switch state.withLock({ $0.next() }) {
        case .deliver(let value, let reader):
            reader?.resume(returning: true)
            result = value
        case .suspend:
            result = await withTaskCancellationHandler {
                await withUnsafeContinuation { (continuation: Machine.ConsumerContinuation) in
                    if case .deliver(let value, let reader) = state.withLock({ $0.suspend(continuation) }) {
                        reader?.resume(returning: true)
                        continuation.resume(returning: value)
                    }
                }
            } onCancel: {
                self.cancel()
            }
        }
        return try result.get()
    }

    @inlinable func cancel() {
        let (consumer, reader) = state.withLock { $0.cancel() }
        consumer?.resume(returning: .success(nil))
        reader?.resume(returning: false)
        readerTask.withLock { $0 }?.cancel()
    }

    @inlinable func read() async {
        var iterator = base.makeAsyncIterator()
        while true {
            switch state.withLock({ $0.readerWantsToPull() }) {
            case .stop: return
            case .pull: break
            case .suspend:
                let proceed = await withUnsafeContinuation { (continuation: UnsafeContinuation<Bool, Never>) in
                    switch state.withLock({ $0.readerSuspend(continuation) }) {
                    case .pull: continuation.resume(returning: true)
                    case .stop: continuation.resume(returning: false)
                    case .suspend: break
                    }
                }
                if !proceed { return }
                continue
            }
            do {
                guard let element = try await iterator.next() else {
                    if let (consumer, result) = state.withLock({ $0.finish(nil) }) {
                        consumer.resume(returning: result)
                    }
                    return
                }
                let current = state.withLock { $0.beginExtend() }
                let extended = current.map { aggregate($0, element) } ?? seed(element)
                if let (consumer, value) = state.withLock({ $0.endExtend(extended) }) {
                    consumer.resume(returning: .success(value))
                }
            } catch {
                if let (consumer, result) = state.withLock({ $0.finish(error) }) { consumer.resume(returning: result) }
                return
            }
        }
    }
}

/// Cancels a batch stage when its iterator goes away.
@usableFromInline final class BatchLifetime<Base: AsyncSequence & Sendable, Aggregate: Sendable>: Sendable
where Base.Element: Sendable {
    @usableFromInline let storage: BatchStorage<Base, Aggregate>
    @inlinable init(_ storage: BatchStorage<Base, Aggregate>) { self.storage = storage }
    deinit { storage.cancel() }
}

extension AsyncSequence where Self: Sendable, Element: Sendable {
    /// Folds elements into aggregates while the consumer is busy, holding the
    /// upstream back once `max` elements are folded into the pending one.
    ///
    /// ```swift
    /// let commits = offsets.batch(max: 1_000, seed: { [$0] }, aggregate: { $0 + [$1] })
    /// ```
    @inlinable public func batch<Aggregate: Sendable>(
        max: Int, seed: @escaping @Sendable (Element) -> Aggregate,
        aggregate: @escaping @Sendable (Aggregate, Element) -> Aggregate
    ) -> AsyncBatchSequence<Self, Aggregate> {
        AsyncBatchSequence(base: self, max: max, seed: seed, aggregate: aggregate)
    }

    /// Folds elements into aggregates while the consumer is busy, never
    /// holding the upstream back: Akka's `conflateWithSeed`.
    ///
    /// ```swift
    /// let latestTotals = ticks.conflate(seed: { $0.volume }, aggregate: { $0 + $1.volume })
    /// ```
    @inlinable public func conflate<Aggregate: Sendable>(
        seed: @escaping @Sendable (Element) -> Aggregate,
        aggregate: @escaping @Sendable (Aggregate, Element) -> Aggregate
    ) -> AsyncBatchSequence<Self, Aggregate> {
        AsyncBatchSequence(base: self, max: Int.max, seed: seed, aggregate: aggregate)
    }

    /// Combines elements with `combine` while the consumer is busy: Akka's `conflate`.
    ///
    /// ```swift
    /// let latest = prices.conflate { _, newer in newer }
    /// ```
    @inlinable public func conflate(
        _ combine: @escaping @Sendable (Element, Element) -> Element
    ) -> AsyncBatchSequence<Self, Element> {
        AsyncBatchSequence(base: self, max: Int.max, seed: { $0 }, aggregate: combine)
    }
}
