/// A type-erased, throwing asynchronous sequence.
///
/// Used where a stage must accept any upstream (``Flow`` outputs, custom flows).
/// Erasure costs one virtual call per element and no allocation per element.
public struct AnyAsyncSequence<Element>: AsyncSequence, @unchecked Sendable {
    public typealias Failure = any Error
    private let makeIterator: () -> Iterator

    /// Wraps `base`, hiding its concrete type.
    public init<Base: AsyncSequence & Sendable>(_ base: Base) where Base.Element == Element {
        self.makeIterator = { Iterator(IteratorBox(base.makeAsyncIterator())) }
    }

    public func makeAsyncIterator() -> Iterator { makeIterator() }

    /// The iterator of an ``AnyAsyncSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        private let box: ErasedIterator<Element>

        init(_ box: ErasedIterator<Element>) { self.box = box }

        public mutating func next() async throws -> Element? {
            try await box.next(isolation: nil)
        }

        /// Runs the upstream's `next` on the caller's executor: no executor hop per element.
        public mutating func next(isolation actor: isolated (any Actor)? = #isolation) async throws -> Element? {
            try await box.next(isolation: actor)
        }
    }
}

class ErasedIterator<Element> {
    func next(isolation actor: isolated (any Actor)?) async throws -> Element? { nil }
}

final class IteratorBox<Base: AsyncIteratorProtocol>: ErasedIterator<Base.Element> {
    private var base: Base
    init(_ base: Base) { self.base = base }
    override func next(isolation actor: isolated (any Actor)?) async throws -> Base.Element? {
        try await base.next(isolation: actor)
    }
}

extension AsyncSequence where Self: Sendable {
    /// This sequence with its concrete type hidden.
    public func eraseToAnyAsyncSequence() -> AnyAsyncSequence<Element> {
        AnyAsyncSequence(self)
    }
}
