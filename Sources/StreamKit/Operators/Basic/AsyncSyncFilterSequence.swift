/// The elements of a base sequence that satisfy a synchronous predicate.
///
/// Same contract as the standard library's `filter`, minus the async hop per
/// element. Pull-through: pulls upstream until an element passes.
public struct AsyncSyncFilterSequence<Base: AsyncSequence>: AsyncSequence {
    public typealias Element = Base.Element
    public typealias Failure = Base.Failure

    @usableFromInline let base: Base
    @usableFromInline let isIncluded: @Sendable (Base.Element) -> Bool

    @inlinable init(base: Base, isIncluded: @escaping @Sendable (Base.Element) -> Bool) {
        self.base = base
        self.isIncluded = isIncluded
    }

    @inlinable public func makeAsyncIterator() -> Iterator {
        Iterator(base: base.makeAsyncIterator(), isIncluded: isIncluded)
    }

    /// The iterator of ``AsyncSyncFilterSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        public typealias Failure = Base.Failure
        @usableFromInline var base: Base.AsyncIterator
        @usableFromInline let isIncluded: @Sendable (Base.Element) -> Bool

        @inlinable init(base: Base.AsyncIterator, isIncluded: @escaping @Sendable (Base.Element) -> Bool) {
            self.base = base
            self.isIncluded = isIncluded
        }

        @inlinable public mutating func next() async throws(Base.Failure) -> Base.Element? {
            while let element = try await base.next(isolation: nil) {
                if isIncluded(element) { return element }
            }
            return nil
        }

        @inlinable public mutating func next(isolation actor: isolated (any Actor)?) async throws(Base.Failure) -> Base
            .Element?
        {
            while let element = try await base.next(isolation: actor) {
                if isIncluded(element) { return element }
            }
            return nil
        }
    }
}

extension AsyncSyncFilterSequence: Sendable where Base: Sendable {}
