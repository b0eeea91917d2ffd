/// The first `count` elements of a base sequence: Akka Streams' `take`.
///
/// Same contract as the standard library's `prefix(_:)`, compiled for its
/// upstream: the iterator is inlinable, so the stage costs a counter per
/// element in the consumer's loop, where `prefix` runs unspecialised generic
/// code (a type-metadata lookup and an async frame per element).
/// Pull-through: one upstream pull per element, no buffer. After `count`
/// elements it completes without pulling again, so an upstream that would
/// wait for more (a Kafka source) is left alone; cancellation and errors are
/// the upstream's.
public struct AsyncTakeSequence<Base: AsyncSequence>: AsyncSequence {
    public typealias Element = Base.Element
    public typealias Failure = Base.Failure

    @usableFromInline let base: Base
    @usableFromInline let count: Int

    @inlinable init(base: Base, count: Int) {
        self.base = base
        self.count = count
    }

    @inlinable public func makeAsyncIterator() -> Iterator {
        Iterator(base: base.makeAsyncIterator(), remaining: count)
    }

    /// The iterator of ``AsyncTakeSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        public typealias Failure = Base.Failure
        @usableFromInline var base: Base.AsyncIterator
        @usableFromInline var remaining: Int

        @inlinable init(base: Base.AsyncIterator, remaining: Int) {
            self.base = base
            self.remaining = remaining
        }

        @inlinable public mutating func next() async throws(Base.Failure) -> Element? {
            try await next(isolation: nil)
        }

        @inlinable public mutating func next(isolation actor: isolated (any Actor)?) async throws(Base.Failure)
            -> Element?
        {
            guard remaining > 0 else { return nil }
            guard let element = try await base.next(isolation: actor) else {
                remaining = 0
                return nil
            }
            remaining -= 1
            return element
        }
    }
}

extension AsyncTakeSequence: Sendable where Base: Sendable {}

extension AsyncSequence {
    /// The first `count` elements (all of them if there are fewer); nothing when `count` ≤ 0.
    @inlinable public func take(_ count: Int) -> AsyncTakeSequence<Self> {
        AsyncTakeSequence(base: self, count: Swift.max(count, 0))
    }
}
