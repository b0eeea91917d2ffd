/// The running accumulation of a base sequence, starting with the initial
/// value itself: Akka's `scan`.
///
/// Unlike swift-async-algorithms' `reductions(_:_:)`, which starts with the
/// first accumulation, `scan` first emits `initial` (so an empty upstream
/// gives `[initial]`), exactly as Akka Streams does. Pull-through; errors end
/// the sequence.
public struct AsyncScanSequence<Base: AsyncSequence, Result>: AsyncSequence {
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
        Iterator(base: base.makeAsyncIterator(), current: initial, accumulate: accumulate)
    }

    /// The iterator of ``AsyncScanSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline var base: Base.AsyncIterator
        @usableFromInline var current: Result?
        @usableFromInline var emittedInitial = false
        @usableFromInline let accumulate: @Sendable (Result, Base.Element) throws -> Result

        @inlinable init(
            base: Base.AsyncIterator, current: Result,
            accumulate: @escaping @Sendable (Result, Base.Element) throws -> Result
        ) {
            self.base = base
            self.current = current
            self.accumulate = accumulate
        }

        @inlinable public mutating func next() async throws -> Result? {
            guard let value = current else { return nil }
            if !emittedInitial {
                emittedInitial = true
                return value
            }
            do {
                guard let element = try await base.next() else {
                    current = nil
                    return nil
                }
                let next = try accumulate(value, element)
                current = next
                return next
            } catch {
                current = nil
                throw error
            }
        }
    }
}

extension AsyncScanSequence: Sendable where Base: Sendable, Result: Sendable {}

extension AsyncSequence {
    /// Emits `initial`, then each accumulation of it with the elements.
    ///
    /// ```swift
    /// let factorials = Source((1...100).async).transform { $0.scan(BigInt(1)) { $0 * BigInt($1) } }
    /// ```
    @inlinable public func scan<Result>(
        _ initial: Result, _ accumulate: @escaping @Sendable (Result, Element) throws -> Result
    ) -> AsyncScanSequence<Self, Result> {
        AsyncScanSequence(base: self, initial: initial, accumulate: accumulate)
    }
}
