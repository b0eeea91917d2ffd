/// A base sequence that, when it fails, emits one last element derived from
/// the error and completes: Akka's `recover`.
///
/// `recover` returns the element to emit, or `nil` to complete without one;
/// it may rethrow to keep (or replace) the failure. Elements before the
/// error pass unchanged. Pull-through, no buffer.
public struct AsyncRecoverSequence<Base: AsyncSequence>: AsyncSequence {
    /// The upstream's elements, unchanged.
    public typealias Element = Base.Element
    /// The error the sequence may end with.
    public typealias Failure = any Error

    @usableFromInline let base: Base
    @usableFromInline let recover: @Sendable (any Error) throws -> Base.Element?

    @inlinable init(base: Base, recover: @escaping @Sendable (any Error) throws -> Base.Element?) {
        self.base = base
        self.recover = recover
    }

    /// Makes the iterator that produces this sequence's elements.
    @inlinable public func makeAsyncIterator() -> Iterator {
        Iterator(base: base.makeAsyncIterator(), recover: recover)
    }

    /// The iterator of ``AsyncRecoverSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline var base: Base.AsyncIterator
        @usableFromInline let recover: @Sendable (any Error) throws -> Base.Element?
        @usableFromInline var done = false

        @inlinable init(base: Base.AsyncIterator, recover: @escaping @Sendable (any Error) throws -> Base.Element?) {
            self.base = base
            self.recover = recover
        }

        /// The next element, or `nil` once the sequence has ended.
        @inlinable public mutating func next() async throws -> Base.Element? {
            if done { return nil }
            do {
                return try await base.next()
            } catch {
                done = true
                return try recover(error)
            }
        }
    }
}

extension AsyncRecoverSequence: Sendable where Base: Sendable {}

extension AsyncSequence {
    /// On failure, emits `recover(error)` (if not `nil`) and completes.
    ///
    /// ```swift
    /// let readings = sensor.values.recover { _ in .unavailable }
    /// ```
    @inlinable public func recover(
        _ recover: @escaping @Sendable (any Error) throws -> Element?
    ) -> AsyncRecoverSequence<Self> {
        AsyncRecoverSequence(base: self, recover: recover)
    }
}
