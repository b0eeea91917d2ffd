/// A base sequence where each element becomes zero or more elements through
/// a function that carries state: Akka's `statefulMapConcat`.
///
/// The state is created afresh by `initial()` for each iteration. The
/// upstream is pulled only once the elements produced for the previous one
/// are all emitted, so memory is bounded by what one call returns.
public struct AsyncStatefulMapConcatSequence<Base: AsyncSequence, State, Output>: AsyncSequence {
    public typealias Element = Output
    public typealias Failure = any Error

    @usableFromInline let base: Base
    @usableFromInline let initial: @Sendable () -> State
    @usableFromInline let transform: @Sendable (inout State, Base.Element) throws -> [Output]

    @inlinable init(
        base: Base, initial: @escaping @Sendable () -> State,
        transform: @escaping @Sendable (inout State, Base.Element) throws -> [Output]
    ) {
        self.base = base
        self.initial = initial
        self.transform = transform
    }

    @inlinable public func makeAsyncIterator() -> Iterator {
        Iterator(base: base.makeAsyncIterator(), state: initial(), transform: transform)
    }

    /// The iterator of ``AsyncStatefulMapConcatSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline var base: Base.AsyncIterator
        @usableFromInline var state: State
        @usableFromInline let transform: @Sendable (inout State, Base.Element) throws -> [Output]
        @usableFromInline var pending: IndexingIterator<[Output]> = [Output]().makeIterator()

        @inlinable init(
            base: Base.AsyncIterator, state: State,
            transform: @escaping @Sendable (inout State, Base.Element) throws -> [Output]
        ) {
            self.base = base
            self.state = state
            self.transform = transform
        }

        @inlinable public mutating func next() async throws -> Output? {
            while true {
                if let output = pending.next() { return output }
                guard let element = try await base.next() else { return nil }
                pending = try transform(&state, element).makeIterator()
            }
        }
    }
}

extension AsyncStatefulMapConcatSequence: Sendable where Base: Sendable {}

extension AsyncSequence {
    /// Turns each element into zero or more elements, with state carried across elements.
    ///
    /// ```swift
    /// // Emit each distinct value once.
    /// let distinct = ids.statefulMapConcat(initial: { Set<Int>() }) { seen, id in
    ///     seen.insert(id).inserted ? [id] : []
    /// }
    /// ```
    @inlinable public func statefulMapConcat<State, Output>(
        initial: @escaping @Sendable () -> State,
        _ transform: @escaping @Sendable (inout State, Element) throws -> [Output]
    ) -> AsyncStatefulMapConcatSequence<Self, State, Output> {
        AsyncStatefulMapConcatSequence(base: self, initial: initial, transform: transform)
    }
}
