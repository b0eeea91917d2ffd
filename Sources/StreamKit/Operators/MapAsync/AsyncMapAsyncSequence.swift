/// The elements of a base sequence transformed by an async function, up to
/// `parallelism` calls at once, emitted in input order: Akka's `mapAsync`.
///
/// Back-pressure: the upstream is pulled only while fewer than `parallelism`
/// elements are in flight (pulled but not yet emitted, including finished
/// results waiting for an earlier one), so memory is bounded by `parallelism`.
/// Cancellation: cancelling the consuming task, or dropping its iterator,
/// cancels the upstream and every transform in flight. A transform error fails
/// the stream when its element's turn comes, after every earlier result; an
/// upstream error arrives after every element pulled before it.
public struct AsyncMapAsyncSequence<Base: AsyncSequence & Sendable, Output: Sendable>: AsyncSequence, Sendable
where Base.Element: Sendable {
    public typealias Element = Output
    public typealias Failure = any Error

    @usableFromInline let base: Base
    @usableFromInline let parallelism: Int
    @usableFromInline let transform: @Sendable (Base.Element) async throws -> Output

    @inlinable init(base: Base, parallelism: Int, transform: @escaping @Sendable (Base.Element) async throws -> Output)
    {
        self.base = base
        self.parallelism = parallelism
        self.transform = transform
    }

    @inlinable public func makeAsyncIterator() -> Iterator {
        Iterator(base: base, parallelism: parallelism, ordered: true, transform: transform)
    }

    /// The iterator of ``AsyncMapAsyncSequence`` and ``AsyncMapAsyncUnorderedSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline let lifetime: MapAsyncLifetime<Base, Output>?
        @usableFromInline let parallelism: Int

        @inlinable init(
            base: Base, parallelism: Int, ordered: Bool,
            transform: @escaping @Sendable (Base.Element) async throws -> Output
        ) {
            self.parallelism = parallelism
            self.lifetime =
                parallelism >= 1
                ? MapAsyncLifetime(
                    MapAsyncStorage(base: base, parallelism: parallelism, ordered: ordered, transform: transform))
                : nil
        }

        @inlinable public mutating func next() async throws -> Output? {
            guard let lifetime else {
                throw StreamKitError.invalidArgument(
                    "mapAsync(parallelism: \(parallelism)): parallelism must be at least 1")
            }
            return try await lifetime.storage.next()
        }

        /// The most transforms that ran at the same time so far (what the parallelism actually reached).
        public var maxConcurrencyReached: Int { lifetime?.storage.maxConcurrency ?? 0 }
    }
}

/// Ends a `mapAsync` stage when its iterator goes away.
@usableFromInline final class MapAsyncLifetime<Base: AsyncSequence & Sendable, Output: Sendable>: Sendable
where Base.Element: Sendable {
    @usableFromInline let storage: MapAsyncStorage<Base, Output>
    @inlinable init(_ storage: MapAsyncStorage<Base, Output>) { self.storage = storage }
    deinit { storage.terminate() }
}

extension AsyncSequence where Self: Sendable, Element: Sendable {
    /// Transforms each element with `transform`, running up to `parallelism`
    /// calls concurrently, and emits the results in input order.
    ///
    /// This is how a stream calls Swift actors and async services:
    /// ```swift
    /// let enriched = orders.mapAsync(parallelism: 8) { try await pricing.quote($0) }
    /// ```
    /// At most `parallelism` elements are in flight; the upstream is pulled
    /// only when there is room. `parallelism` must be at least 1 (else the
    /// first `next()` throws ``StreamKitError/invalidArgument(_:)``).
    @inlinable public func mapAsync<Output: Sendable>(
        parallelism: Int,
        _ transform: @escaping @Sendable (Element) async throws -> Output
    ) -> AsyncMapAsyncSequence<Self, Output> {
        AsyncMapAsyncSequence(base: self, parallelism: parallelism, transform: transform)
    }

    /// Transforms each element with `transform`, running up to `parallelism`
    /// calls concurrently, and emits each result as soon as it is ready
    /// (completion order, not input order).
    ///
    /// ```swift
    /// let thumbnails = images.mapAsyncUnordered(parallelism: 4) { await render($0) }
    /// ```
    /// Same bounds and cancellation as ``mapAsync(parallelism:_:)``; a slow
    /// element does not hold back the ones after it.
    @inlinable public func mapAsyncUnordered<Output: Sendable>(
        parallelism: Int,
        _ transform: @escaping @Sendable (Element) async throws -> Output
    ) -> AsyncMapAsyncUnorderedSequence<Self, Output> {
        AsyncMapAsyncUnorderedSequence(base: self, parallelism: parallelism, transform: transform)
    }
}
