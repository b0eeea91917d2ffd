import StreamKit

/// A running Kafka stream: its consumer control plus the stream's completion.
/// Alpakka's `DrainingControl`.
///
/// ```swift
/// let control = Consumer.committableSource(settings, subscription: .topics("orders"))
///     .map { ... }
///     .to(Committer.sink(CommitterSettings()))
///     .start()
/// // on SIGTERM:
/// try await control.drainAndShutdown()
/// ```
public struct DrainingControl<Result: Sendable>: Sendable {
    /// The consumer's control.
    public let control: ConsumerControl
    /// Completes when the stream does, with the sink's result.
    public let streamCompletion: Task<Result, any Error>

    /// Pairs a control with the task running its stream.
    public init(control: ConsumerControl, streamCompletion: Task<Result, any Error>) {
        self.control = control
        self.streamCompletion = streamCompletion
    }

    /// Stops consuming, lets records in flight finish and their offsets be
    /// committed, then closes the consumer. Returns the sink's result.
    @discardableResult
    public func drainAndShutdown() async throws -> Result {
        try await control.drainAndShutdown(streamCompletion)
    }

    /// Completes the source without closing the consumer (see ``ConsumerControl/stop()``).
    public func stop() { control.stop() }

    /// Closes the consumer at once; records in flight are not committed.
    public func shutdown() async { await control.shutdown() }

    /// True once the consumer is closed.
    public var isShutdown: Bool { control.isShutdown }

    /// The consumer's metrics.
    public var metrics: ConsumerMetrics { control.metrics }

    /// The consumer's health (``ConsumerControl/health``).
    public var health: ConsumerHealth { control.health }

    /// The consumer's health and its changes (``ConsumerControl/healthChanges()``).
    public func healthChanges() -> AsyncStream<ConsumerHealth> { control.healthChanges() }
}

extension RunnableGraph where Materialized == ConsumerControl {
    /// Starts the stream in a new task and returns its draining control: Alpakka's
    /// `toMat(sink)(DrainingControl.apply).run()`. To run it to its end in the calling task
    /// instead, `try await graph.run()`; to run it as a service, ``KafkaStreamService``.
    ///
    /// A Kafka source runs once: starting the same graph again fails the second stream with
    /// ``KafkaError/Kind/illegalState``.
    public func start() -> DrainingControl<Result> {
        let running: RunningGraph<ConsumerControl, Result> = start()
        return DrainingControl(control: running.materialized, streamCompletion: running.completion)
    }

    /// Starts the stream in a new task and returns its draining control.
    @available(
        *, deprecated, renamed: "start()",
        message: "start() starts a stream and returns its DrainingControl; run() runs it to its end in the calling task"
    )
    public func run() -> DrainingControl<Result> {
        start()
    }
}
