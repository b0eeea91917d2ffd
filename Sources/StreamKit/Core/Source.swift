/// An asynchronous sequence paired with a materialized value: Akka Streams'
/// `Source[Out, Mat]`.
///
/// The materialized value is what running the stream gives its owner besides
/// the elements: a Kafka source materializes a consumer control, a plain
/// sequence materializes nothing (`Void`). Operators on `Source` keep the
/// materialized value, so it survives `map`, `via` and the rest up to
/// ``to(_:)``. A `Source` is itself an `AsyncSequence`: `for try await` works,
/// and every `AsyncSequence` operator applies (use ``transform(_:)`` to keep
/// the materialized value while doing so).
public struct Source<Base: AsyncSequence & Sendable, Materialized: Sendable>: AsyncSequence, Sendable
where Base.Element: Sendable {
    /// The upstream's elements, unchanged.
    public typealias Element = Base.Element

    /// The elements.
    public let base: Base
    /// What running this source gives its owner (for example a consumer control).
    public let materialized: Materialized

    /// Pairs `base` with a materialized value.
    public init(_ base: Base, materialized: Materialized) {
        self.base = base
        self.materialized = materialized
    }

    /// Makes the iterator that produces this sequence's elements.
    public func makeAsyncIterator() -> Base.AsyncIterator { base.makeAsyncIterator() }

    /// Applies any `AsyncSequence` operator to the elements, keeping the materialized value.
    ///
    /// ```swift
    /// source.transform { $0.mapAsync(parallelism: 4, enrich) }
    /// ```
    public func transform<Downstream: AsyncSequence & Sendable>(
        _ body: (Base) -> Downstream
    ) -> Source<Downstream, Materialized> where Downstream.Element: Sendable {
        Source<Downstream, Materialized>(body(base), materialized: materialized)
    }

    /// Transforms each element, in order, one at a time.
    public func map<T: Sendable>(
        _ transform: @escaping @Sendable (Element) async throws -> T
    ) -> Source<AsyncThrowingMapSequence<Base, T>, Materialized> {
        Source<AsyncThrowingMapSequence<Base, T>, Materialized>(base.map(transform), materialized: materialized)
    }

    /// Keeps the elements for which `isIncluded` is true.
    public func filter(
        _ isIncluded: @escaping @Sendable (Element) async throws -> Bool
    ) -> Source<AsyncThrowingFilterSequence<Base>, Materialized> {
        Source<AsyncThrowingFilterSequence<Base>, Materialized>(base.filter(isIncluded), materialized: materialized)
    }

    /// Transforms each element and drops the `nil` results.
    public func compactMap<T: Sendable>(
        _ transform: @escaping @Sendable (Element) async throws -> T?
    ) -> Source<AsyncThrowingCompactMapSequence<Base, T>, Materialized> {
        Source<AsyncThrowingCompactMapSequence<Base, T>, Materialized>(
            base.compactMap(transform), materialized: materialized)
    }

    /// Sends the elements through `flow`.
    @inlinable public func via<F: Flow>(_ flow: F) -> Source<AnyAsyncSequence<F.Output>, Materialized>
    where F.Input == Element, F.Output: Sendable {
        Source<AnyAsyncSequence<F.Output>, Materialized>(flow.apply(base), materialized: materialized)
    }

    /// Connects this source to `sink`, giving a graph that ``RunnableGraph/run()`` runs in the
    /// calling task or ``RunnableGraph/start()`` starts in a new one.
    @inlinable public func to<S: Sink>(_ sink: S) -> RunnableGraph<Materialized, S.Result> where S.Input == Element {
        let base = self.base
        return RunnableGraph(materialized: materialized) { try await sink.run(base) }
    }

    /// Runs this source into `sink` in the calling task and returns the sink's result:
    /// `to(sink).run()` in one step.
    @inlinable public func run<S: Sink>(into sink: S) async throws -> S.Result where S.Input == Element {
        try await sink.run(base)
    }
}

extension Source where Materialized == Void {
    /// A source over any sequence, materializing nothing.
    public init(_ base: Base) {
        self.init(base, materialized: ())
    }
}

/// A source, flows and a sink connected and ready to run: Akka Streams'
/// `RunnableGraph[Mat]`.
public struct RunnableGraph<Materialized: Sendable, Result: Sendable>: Sendable {
    /// What the source materialized (for example a consumer control).
    public let materialized: Materialized
    private let body: @Sendable () async throws -> Result

    /// A graph whose run executes `body`.
    public init(materialized: Materialized, body: @escaping @Sendable () async throws -> Result) {
        self.materialized = materialized
        self.body = body
    }

    /// Runs the graph to its end in the calling task (structured concurrency) and returns the
    /// sink's result. Cancelling the task cancels the whole graph.
    ///
    /// `run()` is the one verb for "run to the end here" across StreamKit and ReactiveKafka
    /// (as swift-service-lifecycle's `Service.run()`); ``start()`` is the one for "start in a
    /// new task and hand me its control".
    public func run() async throws -> Result {
        try await body()
    }

    /// Runs the graph to completion in the current task.
    @available(*, deprecated, renamed: "run()", message: "run() now runs a graph in the calling task")
    public func runHere() async throws -> Result {
        try await run()
    }

    /// Starts the graph in a new task and returns at once with its materialized value and
    /// completion. A graph over a source that can run once (a Kafka source) fails the second
    /// time it runs, with that source's error.
    public func start() -> RunningGraph<Materialized, Result> {
        RunningGraph(materialized: materialized, completion: Task { try await body() })
    }
}

/// A graph that is running: its materialized value and the task that completes with the sink's result.
public struct RunningGraph<Materialized: Sendable, Result: Sendable>: Sendable {
    /// What the source materialized.
    public let materialized: Materialized
    /// Completes with the sink's result, or the stream's error.
    public let completion: Task<Result, any Error>
}
