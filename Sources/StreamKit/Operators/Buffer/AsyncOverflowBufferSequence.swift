/// A base sequence decoupled from its consumer by a bounded buffer with an
/// Akka overflow strategy.
///
/// A reader task pulls the upstream into a buffer of `size` elements while the
/// consumer takes from it, so a fast producer and a slow consumer run
/// concurrently. When the buffer is full, the ``OverflowStrategy`` decides:
/// back-pressure, drop (head, tail, whole buffer, or the new element), or
/// fail. Memory is bounded by `size`. Cancelling the consumer (or dropping its
/// iterator) cancels the reader and the upstream; an upstream error arrives
/// after the buffered elements.
public struct AsyncOverflowBufferSequence<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable
where Base.Element: Sendable {
    /// The upstream's elements, unchanged.
    public typealias Element = Base.Element
    /// The error the sequence may end with.
    public typealias Failure = any Error

    @usableFromInline let base: Base
    @usableFromInline let size: Int
    @usableFromInline let overflow: OverflowStrategy
    @usableFromInline let statistics: BufferStatistics?

    @inlinable init(base: Base, size: Int, overflow: OverflowStrategy, statistics: BufferStatistics?) {
        self.base = base
        self.size = size
        self.overflow = overflow
        self.statistics = statistics
    }

    /// Makes the iterator that produces this sequence's elements.
    @inlinable public func makeAsyncIterator() -> Iterator {
        Iterator(
            size: size,
            lifetime: size >= 1
                ? PumpLifetime(Pump(base, capacity: size, overflow: overflow.pumpOverflow, statistics: statistics))
                : nil
        )
    }

    /// The iterator of ``AsyncOverflowBufferSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline let size: Int
        @usableFromInline let lifetime: PumpLifetime<Base>?

        @inlinable init(size: Int, lifetime: PumpLifetime<Base>?) {
            self.size = size
            self.lifetime = lifetime
        }

        /// The next element, or `nil` once the sequence has ended.
        @inlinable public mutating func next() async throws -> Element? {
            guard let lifetime else {
                throw StreamKitError.invalidArgument("buffer(size: \(size)): size must be at least 1")
            }
            while true {
                switch await lifetime.pump.next() {
                case .element(let element): return element
                case .finished(let error?): throw error
                case .finished(nil): return nil
                case .tick: continue
                }
            }
        }
    }
}

extension AsyncSequence where Self: Sendable, Element: Sendable {
    /// Buffers up to `size` elements between this sequence and its consumer;
    /// `overflow` says what happens when the buffer is full.
    ///
    /// ```swift
    /// let smoothed = ticks.buffer(size: 1_000, overflow: .dropHead)
    /// ```
    /// `size` must be at least 1 (else the first `next()` throws
    /// ``StreamKitError/invalidArgument(_:)``). Pass `statistics` to observe
    /// drops and the high-water mark.
    @inlinable public func buffer(
        size: Int, overflow: OverflowStrategy, statistics: BufferStatistics? = nil
    ) -> AsyncOverflowBufferSequence<Self> {
        AsyncOverflowBufferSequence(base: self, size: size, overflow: overflow, statistics: statistics)
    }
}
