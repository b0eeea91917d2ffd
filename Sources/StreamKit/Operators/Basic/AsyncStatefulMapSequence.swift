/// A base sequence mapped through a function that carries state from one
/// element to the next: Akka's `statefulMap`.
///
/// The state is created afresh by `initial()` for each iteration; at the
/// upstream's normal end `onComplete(state)` may emit one last element. Pull-
/// through: one upstream pull per element, no buffer. Errors of the upstream
/// or the closures end the sequence with that error.
public struct AsyncStatefulMapSequence<Base: AsyncSequence, State, Output>: AsyncSequence {
    /// The type of element this sequence produces.
    public typealias Element = Output
    /// The error the sequence may end with.
    public typealias Failure = any Error

    @usableFromInline let base: Base
    @usableFromInline let initial: @Sendable () -> State
    @usableFromInline let transform: @Sendable (inout State, Base.Element) throws -> Output
    @usableFromInline let onComplete: @Sendable (State) -> Output?

    @inlinable init(
        base: Base, initial: @escaping @Sendable () -> State,
        transform: @escaping @Sendable (inout State, Base.Element) throws -> Output,
        onComplete: @escaping @Sendable (State) -> Output?
    ) {
        self.base = base
        self.initial = initial
        self.transform = transform
        self.onComplete = onComplete
    }

    /// Makes the iterator that produces this sequence's elements.
    @inlinable public func makeAsyncIterator() -> Iterator {
        Iterator(base: base.makeAsyncIterator(), state: initial(), transform: transform, onComplete: onComplete)
    }

    /// The iterator of ``AsyncStatefulMapSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        @usableFromInline var base: Base.AsyncIterator
        @usableFromInline var state: State?
        @usableFromInline let transform: @Sendable (inout State, Base.Element) throws -> Output
        @usableFromInline let onComplete: @Sendable (State) -> Output?

        @inlinable init(
            base: Base.AsyncIterator, state: State,
            transform: @escaping @Sendable (inout State, Base.Element) throws -> Output,
            onComplete: @escaping @Sendable (State) -> Output?
        ) {
            self.base = base
            self.state = state
            self.transform = transform
            self.onComplete = onComplete
        }

        /// The next element, or `nil` once the sequence has ended.
        @inlinable public mutating func next() async throws -> Output? {
            guard state != nil else { return nil }
            do {
                guard let element = try await base.next() else {
                    let last = onComplete(state!)
                    state = nil
                    return last
                }
                return try transform(&state!, element)
            } catch {
                state = nil
                throw error
            }
        }
    }
}

extension AsyncStatefulMapSequence: Sendable where Base: Sendable {}

extension AsyncSequence {
    /// Maps each element with access to state carried across elements.
    ///
    /// ```swift
    /// // Pair each element with the previous one.
    /// let pairs = values.statefulMap(initial: { Int?.none }) { previous, value in
    ///     defer { previous = value }
    ///     return (previous, value)
    /// }
    /// ```
    @inlinable public func statefulMap<State, Output>(
        initial: @escaping @Sendable () -> State,
        _ transform: @escaping @Sendable (inout State, Element) throws -> Output,
        onComplete: @escaping @Sendable (State) -> Output? = { _ in nil }
    ) -> AsyncStatefulMapSequence<Self, State, Output> {
        AsyncStatefulMapSequence(base: self, initial: initial, transform: transform, onComplete: onComplete)
    }
}
