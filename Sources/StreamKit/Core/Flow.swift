/// A processing stage with one input and one output: Akka Streams' `Flow`.
///
/// A flow turns any upstream of `Input` into a sequence of `Output`. Its
/// back-pressure contract is that of the sequence it returns: it pulls
/// upstream only when its own consumer asks for elements (plus whatever
/// bounded look-ahead the flow documents). Attach one with ``Source/via(_:)``
/// or `AsyncSequence.via(_:)`.
public protocol Flow<Input, Output>: Sendable {
    /// What the flow consumes.
    associatedtype Input
    /// What the flow emits.
    associatedtype Output

    /// Returns the flow's output over `upstream`. Nothing runs until the
    /// returned sequence is iterated.
    func apply<Upstream: AsyncSequence & Sendable>(_ upstream: Upstream) -> AnyAsyncSequence<Output>
    where Upstream.Element == Input
}

/// A flow defined by a function from an upstream sequence to a downstream one.
///
/// ```swift
/// let parse = FlowOf<String, Int> { $0.compactMap { Int($0) } }
/// ```
public struct FlowOf<Input, Output>: Flow {
    @usableFromInline let body: @Sendable (AnyAsyncSequence<Input>) -> AnyAsyncSequence<Output>

    /// Creates a flow that applies `body` to its upstream.
    public init<Downstream: AsyncSequence & Sendable>(
        _ body: @escaping @Sendable (AnyAsyncSequence<Input>) -> Downstream
    ) where Downstream.Element == Output {
        self.body = { AnyAsyncSequence(body($0)) }
    }

    // Inlinable, so the upstream is erased where its type is known (see `AnyAsyncSequence`).
    /// The flow's body applied to `upstream`.
    @inlinable
    public func apply<Upstream: AsyncSequence & Sendable>(_ upstream: Upstream) -> AnyAsyncSequence<Output>
    where Upstream.Element == Input {
        body(AnyAsyncSequence(upstream))
    }

    /// This flow followed by `next`.
    public func via<Next: Flow>(_ next: Next) -> FlowOf<Input, Next.Output> where Next.Input == Output {
        let first = self
        return FlowOf<Input, Next.Output> { upstream in next.apply(first.apply(upstream)) }
    }
}

extension AsyncSequence where Self: Sendable {
    /// Sends this sequence through `flow`.
    @inlinable public func via<F: Flow>(_ flow: F) -> AnyAsyncSequence<F.Output> where F.Input == Element {
        flow.apply(self)
    }
}
