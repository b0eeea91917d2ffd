/// A type-erased, throwing asynchronous sequence.
///
/// Used where a stage must accept any upstream (``Flow`` outputs, custom flows).
/// Erasure costs one indirect call per element and no allocation per element. The
/// initializer is inlinable: erasing a sequence whose type is known where it is erased
/// compiles its iterator's `next` specialised for that type, so the erased call reaches
/// the concrete iterator directly, with no generic dispatch or metadata look-up behind it.
public struct AnyAsyncSequence<Element>: AsyncSequence, @unchecked Sendable {
    public typealias Failure = any Error
    @usableFromInline let makeIterator: @Sendable () -> Iterator

    /// Wraps `base`, hiding its concrete type.
    @inlinable public init<Base: AsyncSequence & Sendable>(_ base: Base) where Base.Element == Element {
        if let erased = base as? AnyAsyncSequence<Element> {
            self = erased
            return
        }
        self.makeIterator = {
            let storage = ErasedIteratorStorage(base.makeAsyncIterator())
            return Iterator { () async throws -> Element? in try await storage.base.next(isolation: #isolation) }
        }
    }

    @inlinable public func makeAsyncIterator() -> Iterator { makeIterator() }

    /// The iterator of an ``AnyAsyncSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        /// Runs on the caller's executor (no executor switch per element, not even a check).
        @usableFromInline let nextElement: nonisolated(nonsending) () async throws -> Element?

        @inlinable init(_ nextElement: nonisolated(nonsending) @escaping () async throws -> Element?) {
            self.nextElement = nextElement
        }

        @inlinable public mutating func next() async throws -> Element? {
            try await nextElement()
        }

        /// Runs the upstream's `next` on the caller's executor: no executor hop per element.
        @inlinable public mutating func next(isolation actor: isolated (any Actor)? = #isolation) async throws
            -> Element?
        {
            try await nextElement()
        }
    }
}

/// The erased iterator itself; only its ``AnyAsyncSequence/Iterator`` calls it, one call at a time.
@usableFromInline
final class ErasedIteratorStorage<Base: AsyncIteratorProtocol>: @unchecked Sendable {
    @usableFromInline var base: Base
    @inlinable init(_ base: Base) { self.base = base }
}

extension AsyncSequence where Self: Sendable {
    /// This sequence with its concrete type hidden.
    @inlinable public func eraseToAnyAsyncSequence() -> AnyAsyncSequence<Element> {
        AnyAsyncSequence(self)
    }
}
