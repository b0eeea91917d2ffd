/// A merge whose set of upstreams changes while it runs: Akka's `MergeHub`.
///
/// ```swift
/// let hub = DynamicMerge<Event>()
/// hub.add(connectionA.events)
/// hub.add(connectionB.events)   // any time, from any task
/// for try await event in hub.elements { … }
/// hub.finish()                  // no more upstreams: completes once the added ones have
/// ```
/// Each added upstream starts pulling at once in its own task and waits when
/// the shared buffer of `bufferSize` is full (back-pressure). ``elements``
/// may be iterated once, by one consumer; cancelling it cancels every
/// upstream, and upstreams added afterwards are not started. The first
/// upstream error fails ``elements`` after the elements already buffered.
public final class DynamicMerge<Element: Sendable>: Sendable {
    @usableFromInline let storage: MergeStorage<Element>

    /// A merge with no upstream yet, sharing a buffer of `bufferSize` elements.
    @inlinable public init(bufferSize: Int = 16) {
        storage = MergeStorage(bufferSize: bufferSize)
    }

    /// Adds `upstream`: its elements join ``elements`` from now on.
    @inlinable public func add<Upstream: AsyncSequence & Sendable>(_ upstream: Upstream)
    where Upstream.Element == Element {
        storage.add(upstream)
    }

    /// Declares that no more upstreams will be added: ``elements`` completes once the added ones have.
    @inlinable public func finish() {
        storage.close()
    }

    /// The merged elements; iterate once.
    @inlinable public var elements: AsyncDynamicMergeSequence<Element> {
        AsyncDynamicMergeSequence(storage: storage)
    }
}

/// The merged elements of a ``DynamicMerge``.
public struct AsyncDynamicMergeSequence<Element: Sendable>: AsyncSequence, Sendable {
    public typealias Failure = any Error
    @usableFromInline let storage: MergeStorage<Element>

    @inlinable init(storage: MergeStorage<Element>) { self.storage = storage }

    /// Dropping the iterator cancels the merge and every upstream.
    @inlinable public func makeAsyncIterator() -> Iterator { Iterator(lifetime: MergeLifetime(storage)) }

    /// The iterator of ``AsyncDynamicMergeSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline let lifetime: MergeLifetime<Element>
        @inlinable init(lifetime: MergeLifetime<Element>) { self.lifetime = lifetime }

        @inlinable public mutating func next() async throws -> Element? {
            try await lifetime.storage.next()
        }
    }
}
