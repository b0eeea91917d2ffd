import Synchronization

/// One output of a fan-out stage (``_Concurrency/AsyncSequence/broadcast(count:bufferSize:)``,
/// ``_Concurrency/AsyncSequence/partition(into:bufferSize:by:)``,
/// ``_Concurrency/AsyncSequence/balance(into:bufferSize:)``).
///
/// Each branch may be iterated once. The stage starts pulling the upstream
/// when any branch first asks for an element. A branch that is slow holds
/// back the upstream once its buffer is full (back-pressure); a branch whose
/// consumer is cancelled, or that is dropped without being iterated, stops
/// receiving and no longer holds anything back. When every branch has
/// stopped, the upstream is cancelled. An upstream error reaches every
/// branch after the elements before it.
public struct AsyncFanOutBranch<Element: Sendable>: AsyncSequence, Sendable {
    /// The error the sequence may end with.
    public typealias Failure = any Error

    @usableFromInline let handle: BranchHandle<Element>

    /// Which output of the stage this is (0-based).
    public var index: Int { handle.index }

    @inlinable init(handle: BranchHandle<Element>) {
        self.handle = handle
    }

    /// Makes the iterator that produces this sequence's elements.
    @inlinable public func makeAsyncIterator() -> Iterator {
        let first = handle.iterated.withLock { iterated in
            defer { iterated = true }
            return !iterated
        }
        return Iterator(handle: first ? handle : nil)
    }

    /// The iterator of ``AsyncFanOutBranch``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline let handle: BranchHandle<Element>?

        @inlinable init(handle: BranchHandle<Element>?) {
            self.handle = handle
        }

        /// The next element, or `nil` once the sequence has ended.
        @inlinable public mutating func next() async throws -> Element? {
            guard let handle else { throw StreamKitError.alreadyIterated("a fan-out branch") }
            return try await handle.storage.next(branch: handle.index)
        }
    }
}

/// Keeps a branch subscribed while its sequence or iterator exists.
@usableFromInline final class BranchHandle<Element: Sendable>: Sendable {
    @usableFromInline let storage: FanOutStorage<Element>
    @usableFromInline let index: Int
    @usableFromInline let iterated = Mutex(false)

    @inlinable init(storage: FanOutStorage<Element>, index: Int) {
        self.storage = storage
        self.index = index
    }

    deinit { storage.cancel(branch: index) }
}

@inlinable func makeFanOut<Base: AsyncSequence & Sendable>(
    _ base: Base, branches: Int, bufferSize: Int, routing: FanOutRouting<Base.Element>
) -> [AsyncFanOutBranch<Base.Element>] where Base.Element: Sendable {
    let storage = FanOutStorage(base: base, branches: branches, bufferSize: bufferSize, routing: routing)
    return (0..<branches).map { AsyncFanOutBranch(handle: BranchHandle(storage: storage, index: $0)) }
}
