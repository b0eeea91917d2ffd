/// The elements of a base sequence transformed by a synchronous function.
///
/// Same contract as the standard library's `map`, minus the async hop per
/// element: with a synchronous closure the whole stage inlines into the
/// consumer's loop. Pull-through: one upstream pull per element, no buffer;
/// cancellation and errors are the upstream's.
public struct AsyncSyncMapSequence<Base: AsyncSequence, Output>: AsyncSequence {
    public typealias Element = Output
    public typealias Failure = Base.Failure

    @usableFromInline let base: Base
    @usableFromInline let transform: @Sendable (Base.Element) -> Output

    @inlinable init(base: Base, transform: @escaping @Sendable (Base.Element) -> Output) {
        self.base = base
        self.transform = transform
    }

    @inlinable public func makeAsyncIterator() -> Iterator {
        Iterator(base: base.makeAsyncIterator(), transform: transform)
    }

    /// The iterator of ``AsyncSyncMapSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        public typealias Failure = Base.Failure
        @usableFromInline var base: Base.AsyncIterator
        @usableFromInline let transform: @Sendable (Base.Element) -> Output

        @inlinable init(base: Base.AsyncIterator, transform: @escaping @Sendable (Base.Element) -> Output) {
            self.base = base
            self.transform = transform
        }

        @inlinable public mutating func next() async throws(Base.Failure) -> Output? {
            guard let element = try await base.next(isolation: nil) else { return nil }
            return transform(element)
        }

        @inlinable public mutating func next(isolation actor: isolated (any Actor)?) async throws(Base.Failure)
            -> Output?
        {
            guard let element = try await base.next(isolation: actor) else { return nil }
            return transform(element)
        }
    }
}

extension AsyncSyncMapSequence: Sendable where Base: Sendable {}
