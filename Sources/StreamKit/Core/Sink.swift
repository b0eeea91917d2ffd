/// A stage that consumes a stream and produces one result: Akka Streams' `Sink`.
///
/// A sink pulls from its upstream at its own pace (that is the back-pressure
/// it exerts) and returns when the upstream completes. Cancelling the task that
/// runs it cancels the upstream.
public protocol Sink<Input, Result>: Sendable {
    /// What the sink consumes.
    associatedtype Input
    /// What the sink yields when the upstream completes.
    associatedtype Result: Sendable

    /// Consumes `upstream` to its end and returns the result.
    func run<Upstream: AsyncSequence & Sendable>(_ upstream: Upstream) async throws -> Result
    where Upstream.Element == Input
}

/// A sink defined by a function that consumes an upstream sequence.
public struct SinkOf<Input, Result: Sendable>: Sink {
    private let body: @Sendable (AnyAsyncSequence<Input>) async throws -> Result

    /// Creates a sink that runs `body` over its upstream.
    public init(_ body: @escaping @Sendable (AnyAsyncSequence<Input>) async throws -> Result) {
        self.body = body
    }

    /// Runs the sink's body over `upstream` and returns its result.
    public func run<Upstream: AsyncSequence & Sendable>(_ upstream: Upstream) async throws -> Result
    where Upstream.Element == Input {
        try await body(AnyAsyncSequence(upstream))
    }
}

/// Ready-made sinks.
public enum Sinks {
    /// Discards every element; completes when the upstream does.
    public static func ignore<Input>(_: Input.Type = Input.self) -> SinkOf<Input, Void> {
        SinkOf { upstream in for try await _ in upstream {} }
    }

    /// Calls `body` for every element, in order, one at a time.
    public static func forEach<Input>(_ body: @escaping @Sendable (Input) async throws -> Void) -> SinkOf<Input, Void> {
        SinkOf { upstream in for try await element in upstream { try await body(element) } }
    }

    /// Collects every element. Memory grows with the stream: use on finite streams.
    public static func collect<Input: Sendable>(_: Input.Type = Input.self) -> SinkOf<Input, [Input]> {
        SinkOf { upstream in
            var all: [Input] = []
            for try await element in upstream { all.append(element) }
            return all
        }
    }
}
