/// A sequence of one element: the accumulation of the whole base sequence,
/// emitted when it completes: Akka's `fold` (a stage, unlike the terminal
/// `reduce`, so a pipeline can continue after it).
///
/// Consumes the upstream to its end in the first `next()`; an empty upstream
/// gives `initial`. An error ends the sequence without a result.
public struct AsyncFoldSequence<Base: AsyncSequence, Result>: AsyncSequence {
    public typealias Element = Result
    public typealias Failure = any Error

    @usableFromInline let base: Base
    @usableFromInline let initial: Result
    @usableFromInline let accumulate: @Sendable (Result, Base.Element) throws -> Result

    @inlinable init(
        base: Base, initial: Result, accumulate: @escaping @Sendable (Result, Base.Element) throws -> Result
    ) {
        self.base = base
        self.initial = initial
        self.accumulate = accumulate
    }

    @inlinable public func makeAsyncIterator() -> Iterator {
        Iterator(base: base.makeAsyncIterator(), initial: initial, accumulate: accumulate)
    }

    /// The iterator of ``AsyncFoldSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline var base: Base.AsyncIterator
        @usableFromInline var initial: Result?
        @usableFromInline let accumulate: @Sendable (Result, Base.Element) throws -> Result

        @inlinable init(
            base: Base.AsyncIterator, initial: Result,
            accumulate: @escaping @Sendable (Result, Base.Element) throws -> Result
        ) {
            self.base = base
            self.initial = initial
            self.accumulate = accumulate
        }

        @inlinable public mutating func next() async throws -> Result? {
            guard var result = initial else { return nil }
            initial = nil
            while let element = try await base.next() {
                result = try accumulate(result, element)
            }
            return result
        }
    }
}

extension AsyncFoldSequence: Sendable where Base: Sendable, Result: Sendable {}

extension AsyncSequence {
    /// Emits one element when the sequence completes: `initial` accumulated with every element.
    ///
    /// ```swift
    /// let total = orders.map(\.amount).fold(0, +)
    /// ```
    @inlinable public func fold<Result>(
        _ initial: Result, _ accumulate: @escaping @Sendable (Result, Element) throws -> Result
    ) -> AsyncFoldSequence<Self, Result> {
        AsyncFoldSequence(base: self, initial: initial, accumulate: accumulate)
    }
}
