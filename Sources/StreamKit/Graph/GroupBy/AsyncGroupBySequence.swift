import Synchronization

/// Sub-streams of a base sequence, one per key: Akka's `groupBy`, and what
/// per-partition Kafka sources are built on.
///
/// Iterating the outer sequence yields an ``AsyncGroupBySubstream`` the
/// first time each key is seen; that sub-stream then receives every element
/// with its key, in upstream order. Each sub-stream buffers at most
/// `bufferSize` elements; when the one an element belongs to is full, the
/// whole stage stops pulling until it drains (back-pressure), so consume
/// sub-streams concurrently. More than `maxSubstreams` distinct keys fail
/// the stage with ``StreamKitError/tooManySubstreams(max:)``. Elements of a
/// sub-stream whose consumer stopped are dropped; once the outer consumer
/// stopped, elements of new keys are dropped. The upstream is cancelled
/// when the outer sequence and every sub-stream have stopped. An upstream
/// error reaches the outer sequence and every sub-stream after their elements.
public struct AsyncGroupBySequence<Base: AsyncSequence & Sendable, Key: Hashable & Sendable>: AsyncSequence, Sendable
where Base.Element: Sendable {
    public typealias Element = AsyncGroupBySubstream<Key, Base.Element>
    public typealias Failure = any Error

    @usableFromInline let base: Base
    @usableFromInline let maxSubstreams: Int
    @usableFromInline let bufferSize: Int
    @usableFromInline let key: @Sendable (Base.Element) -> Key

    @inlinable init(base: Base, maxSubstreams: Int, bufferSize: Int, key: @escaping @Sendable (Base.Element) -> Key) {
        self.base = base
        self.maxSubstreams = maxSubstreams
        self.bufferSize = bufferSize
        self.key = key
    }

    @inlinable public func makeAsyncIterator() -> Iterator {
        Iterator(
            maxSubstreams: maxSubstreams,
            lifetime: maxSubstreams >= 1
                ? GroupByOuterLifetime(
                    GroupByStorage(base: base, maxSubstreams: maxSubstreams, bufferSize: bufferSize, key: key))
                : nil
        )
    }

    /// The iterator of ``AsyncGroupBySequence``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline let maxSubstreams: Int
        @usableFromInline let lifetime: GroupByOuterLifetime<Key, Base.Element>?

        @inlinable init(maxSubstreams: Int, lifetime: GroupByOuterLifetime<Key, Base.Element>?) {
            self.maxSubstreams = maxSubstreams
            self.lifetime = lifetime
        }

        @inlinable public mutating func next() async throws -> AsyncGroupBySubstream<Key, Base.Element>? {
            guard let lifetime else {
                throw StreamKitError.invalidArgument(
                    "groupBy(maxSubstreams: \(maxSubstreams)): maxSubstreams must be at least 1")
            }
            guard let (key, id) = try await lifetime.storage.nextSubstream() else { return nil }
            return AsyncGroupBySubstream(key: key, handle: GroupBySubstreamHandle(storage: lifetime.storage, id: id))
        }
    }
}

/// The elements of one key of an ``AsyncGroupBySequence``, in upstream order.
///
/// Iterate it once; dropping it (or cancelling its consumer) stops it, and
/// later elements with its key are dropped.
public struct AsyncGroupBySubstream<Key: Hashable & Sendable, Element: Sendable>: AsyncSequence, Sendable {
    public typealias Failure = any Error

    /// The key every element of this sub-stream has.
    public let key: Key
    @usableFromInline let handle: GroupBySubstreamHandle<Key, Element>

    @inlinable init(key: Key, handle: GroupBySubstreamHandle<Key, Element>) {
        self.key = key
        self.handle = handle
    }

    @inlinable public func makeAsyncIterator() -> Iterator {
        let first = handle.iterated.withLock { iterated in
            defer { iterated = true }
            return !iterated
        }
        return Iterator(handle: first ? handle : nil)
    }

    /// The iterator of ``AsyncGroupBySubstream``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline let handle: GroupBySubstreamHandle<Key, Element>?

        @inlinable init(handle: GroupBySubstreamHandle<Key, Element>?) { self.handle = handle }

        @inlinable public mutating func next() async throws -> Element? {
            guard let handle else { throw StreamKitError.alreadyIterated("a groupBy sub-stream") }
            return try await handle.storage.next(sub: handle.id)
        }
    }
}

/// Stops the outer sequence when its iterator goes away.
@usableFromInline final class GroupByOuterLifetime<Key: Hashable & Sendable, Element: Sendable>: Sendable {
    @usableFromInline let storage: GroupByStorage<Key, Element>
    @inlinable init(_ storage: GroupByStorage<Key, Element>) { self.storage = storage }
    deinit { storage.cancelOuter() }
}

/// Stops a sub-stream when neither it nor its iterator exists any more.
@usableFromInline final class GroupBySubstreamHandle<Key: Hashable & Sendable, Element: Sendable>: Sendable {
    @usableFromInline let storage: GroupByStorage<Key, Element>
    @usableFromInline let id: Int
    @usableFromInline let iterated = Mutex(false)
    @inlinable init(storage: GroupByStorage<Key, Element>, id: Int) {
        self.storage = storage
        self.id = id
    }
    deinit { storage.cancel(sub: id) }
}

extension AsyncSequence where Self: Sendable, Element: Sendable {
    /// Splits this sequence into one sub-stream per key.
    ///
    /// ```swift
    /// try await withThrowingDiscardingTaskGroup { group in
    ///     for try await partition in records.groupBy(maxSubstreams: 64, key: \.partition) {
    ///         group.addTask { for try await record in partition { try await handle(record) } }
    ///     }
    /// }
    /// ```
    /// `maxSubstreams` must be at least 1 (else the first `next()` throws
    /// ``StreamKitError/invalidArgument(_:)``); `bufferSize` bounds each sub-stream.
    @inlinable public func groupBy<Key: Hashable & Sendable>(
        maxSubstreams: Int, bufferSize: Int = 16, key: @escaping @Sendable (Element) -> Key
    ) -> AsyncGroupBySequence<Self, Key> {
        AsyncGroupBySequence(base: self, maxSubstreams: maxSubstreams, bufferSize: bufferSize, key: key)
    }
}
