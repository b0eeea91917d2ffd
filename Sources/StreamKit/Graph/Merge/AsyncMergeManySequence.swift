/// The elements of any number of sequences, interleaved as they arrive:
/// `merge` of N (swift-async-algorithms merges two or three).
///
/// Each upstream runs in its own task once the merged sequence is first
/// asked for an element; they share one buffer of `bufferSize` elements and
/// an upstream that finds it full waits (back-pressure), so memory is bounded
/// by `bufferSize` plus one element per upstream. The merge completes when
/// every upstream has; the first upstream error fails it (after the elements
/// already buffered) and cancels the other upstreams. Cancelling the
/// consumer cancels every upstream. Order within one upstream is kept.
public struct AsyncMergeManySequence<Upstream: AsyncSequence & Sendable>: AsyncSequence, Sendable
where Upstream.Element: Sendable {
    /// The upstream's elements, unchanged.
    public typealias Element = Upstream.Element
    /// The error the sequence may end with.
    public typealias Failure = any Error

    @usableFromInline let upstreams: [Upstream]
    @usableFromInline let bufferSize: Int

    @inlinable init(upstreams: [Upstream], bufferSize: Int) {
        self.upstreams = upstreams
        self.bufferSize = bufferSize
    }

    /// Makes the iterator that produces this sequence's elements.
    @inlinable public func makeAsyncIterator() -> Iterator {
        Iterator(upstreams: upstreams, lifetime: MergeLifetime(MergeStorage(bufferSize: bufferSize)))
    }

    /// The iterator of ``AsyncMergeManySequence``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline var upstreams: [Upstream]?
        @usableFromInline let lifetime: MergeLifetime<Element>

        @inlinable init(upstreams: [Upstream], lifetime: MergeLifetime<Element>) {
            self.upstreams = upstreams
            self.lifetime = lifetime
        }

        /// The next element, or `nil` once the sequence has ended.
        @inlinable public mutating func next() async throws -> Element? {
            if let upstreams {
                self.upstreams = nil
                for upstream in upstreams { lifetime.storage.add(upstream) }
                lifetime.storage.close()
            }
            return try await lifetime.storage.next()
        }
    }
}

/// Merges any number of sequences of the same type into one, interleaving
/// elements as they arrive (see ``AsyncMergeManySequence``).
///
/// ```swift
/// let all = merge(partitions, bufferSize: 64)
/// ```
@inlinable public func merge<Upstream: AsyncSequence & Sendable>(
    _ upstreams: [Upstream], bufferSize: Int = 16
) -> AsyncMergeManySequence<Upstream> where Upstream.Element: Sendable {
    AsyncMergeManySequence(upstreams: upstreams, bufferSize: bufferSize)
}
