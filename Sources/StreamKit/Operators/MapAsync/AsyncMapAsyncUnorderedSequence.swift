/// The elements of a base sequence transformed by an async function, up to
/// `parallelism` calls at once, emitted in completion order: Akka's
/// `mapAsyncUnordered`.
///
/// Back-pressure, memory bound and cancellation are those of
/// ``AsyncMapAsyncSequence``; only the order differs. A transform error fails
/// the stream once the results completed before it are emitted.
public struct AsyncMapAsyncUnorderedSequence<Base: AsyncSequence & Sendable, Output: Sendable>: AsyncSequence, Sendable
where Base.Element: Sendable {
    public typealias Element = Output
    public typealias Failure = any Error

    @usableFromInline let base: Base
    @usableFromInline let parallelism: Int
    @usableFromInline let transform: @Sendable (Base.Element) async throws -> Output

    @inlinable init(base: Base, parallelism: Int, transform: @escaping @Sendable (Base.Element) async throws -> Output)
    {
        self.base = base
        self.parallelism = parallelism
        self.transform = transform
    }

    @inlinable public func makeAsyncIterator() -> AsyncMapAsyncSequence<Base, Output>.Iterator {
        AsyncMapAsyncSequence<Base, Output>.Iterator(
            base: base, parallelism: parallelism, ordered: false, transform: transform)
    }
}
