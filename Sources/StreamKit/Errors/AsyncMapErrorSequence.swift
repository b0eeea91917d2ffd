/// A base sequence whose failure is replaced by `transform(error)`: Akka's `mapError`.
///
/// Elements and completion pass unchanged. Pull-through.
public struct AsyncMapErrorSequence<Base: AsyncSequence>: AsyncSequence {
    /// The upstream's elements, unchanged.
    public typealias Element = Base.Element
    /// The error the sequence may end with.
    public typealias Failure = any Error

    @usableFromInline let base: Base
    @usableFromInline let transform: @Sendable (any Error) -> any Error

    @inlinable init(base: Base, transform: @escaping @Sendable (any Error) -> any Error) {
        self.base = base
        self.transform = transform
    }

    /// Makes the iterator that produces this sequence's elements.
    @inlinable public func makeAsyncIterator() -> Iterator {
        Iterator(base: base.makeAsyncIterator(), transform: transform)
    }

    /// The iterator of ``AsyncMapErrorSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline var base: Base.AsyncIterator
        @usableFromInline let transform: @Sendable (any Error) -> any Error

        @inlinable init(base: Base.AsyncIterator, transform: @escaping @Sendable (any Error) -> any Error) {
            self.base = base
            self.transform = transform
        }

        /// The next element, or `nil` once the sequence has ended.
        @inlinable public mutating func next() async throws -> Base.Element? {
            do {
                return try await base.next()
            } catch {
                throw transform(error)
            }
        }
    }
}

extension AsyncMapErrorSequence: Sendable where Base: Sendable {}

extension AsyncSequence {
    /// Replaces a failure with `transform(error)`.
    ///
    /// ```swift
    /// let orders = raw.mapError { OrderFeedError.upstream($0) }
    /// ```
    @inlinable public func mapError(
        _ transform: @escaping @Sendable (any Error) -> any Error
    ) -> AsyncMapErrorSequence<Self> {
        AsyncMapErrorSequence(base: self, transform: transform)
    }
}
