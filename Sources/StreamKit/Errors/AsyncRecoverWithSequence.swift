/// A base sequence that, when it fails, continues with another sequence
/// chosen from the error: Akka's `recoverWithRetries`.
///
/// `recover` returns the sequence to continue with, or `nil` to rethrow.
/// The replacement may itself fail and be replaced again, up to
/// `maxAttempts` times (then its error is thrown). Pull-through.
public struct AsyncRecoverWithSequence<Base: AsyncSequence, Replacement: AsyncSequence>: AsyncSequence
where Replacement.Element == Base.Element {
    public typealias Element = Base.Element
    public typealias Failure = any Error

    @usableFromInline let base: Base
    @usableFromInline let maxAttempts: Int
    @usableFromInline let recover: @Sendable (any Error) -> Replacement?

    @inlinable init(base: Base, maxAttempts: Int, recover: @escaping @Sendable (any Error) -> Replacement?) {
        self.base = base
        self.maxAttempts = maxAttempts
        self.recover = recover
    }

    @inlinable public func makeAsyncIterator() -> Iterator {
        Iterator(base: base.makeAsyncIterator(), maxAttempts: maxAttempts, recover: recover)
    }

    /// The iterator of ``AsyncRecoverWithSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline var base: Base.AsyncIterator?
        @usableFromInline var replacement: Replacement.AsyncIterator? = nil
        @usableFromInline var attempts = 0
        @usableFromInline let maxAttempts: Int
        @usableFromInline let recover: @Sendable (any Error) -> Replacement?

        @inlinable init(
            base: Base.AsyncIterator, maxAttempts: Int, recover: @escaping @Sendable (any Error) -> Replacement?
        ) {
            self.base = base
            self.maxAttempts = maxAttempts
            self.recover = recover
        }

        @inlinable public mutating func next() async throws -> Element? {
            while true {
                do {
                    if base != nil { return try await base!.next() }
                    if replacement != nil { return try await replacement!.next() }
                    return nil
                } catch {
                    base = nil
                    replacement = nil
                    guard attempts < maxAttempts, let next = recover(error) else { throw error }
                    attempts += 1
                    replacement = next.makeAsyncIterator()
                }
            }
        }
    }
}

extension AsyncRecoverWithSequence: Sendable where Base: Sendable {}

extension AsyncSequence {
    /// On failure, continues with `recover(error)` (or rethrows if it returns
    /// `nil`), replacing failed replacements up to `maxAttempts` times.
    ///
    /// ```swift
    /// let quotes = primary.quotes.recoverWith(maxAttempts: 3) { _ in backup.quotes }
    /// ```
    @inlinable public func recoverWith<Replacement: AsyncSequence>(
        maxAttempts: Int = Int.max, _ recover: @escaping @Sendable (any Error) -> Replacement?
    ) -> AsyncRecoverWithSequence<Self, Replacement> where Replacement.Element == Element {
        AsyncRecoverWithSequence(base: self, maxAttempts: maxAttempts, recover: recover)
    }
}
