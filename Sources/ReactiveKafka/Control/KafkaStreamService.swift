import ServiceLifecycle
import StreamKit

/// Runs a Kafka stream as a swift-service-lifecycle `Service`, so SIGTERM and
/// SIGINT drain it: stop polling, let records in flight finish and commit,
/// then close the consumer (leaving the group).
///
/// ```swift
/// let graph = Consumer.committableSource(settings, subscription: .topics("orders"))
///     .map(process)
///     .to(Committer.sink(CommitterSettings()))
/// let group = ServiceGroup(services: [KafkaStreamService(graph)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
/// try await group.run()
/// ```
public struct KafkaStreamService<Result: Sendable>: Service {
    private let graph: RunnableGraph<ConsumerControl, Result>

    /// A service running `graph`.
    public init(_ graph: RunnableGraph<ConsumerControl, Result>) {
        self.graph = graph
    }

    /// The stream's control (to read metrics while it runs).
    public var control: ConsumerControl { graph.materialized }

    /// The stream's consumer health, for a readiness or liveness endpoint (``ConsumerHealth``).
    public var health: ConsumerHealth { graph.materialized.health }

    /// The consumer's health and each change (``ConsumerControl/healthChanges()``).
    public func healthChanges() -> AsyncStream<ConsumerHealth> { graph.materialized.healthChanges() }

    /// Runs the stream until it ends or graceful shutdown drains it (commits, then stops the consumer).
    public func run() async throws {
        let control = graph.materialized
        do {
            try await withGracefulShutdownHandler {
                _ = try await graph.run()
            } onGracefulShutdown: {
                control.drainRequested()
            }
        } catch {
            await control.shutdown()
            throw error
        }
        await control.shutdown()
    }
}

extension ConsumerControl {
    /// Graceful shutdown began: complete the source and keep the consumer for
    /// commits until the stream finishes.
    func drainRequested() {
        markDraining()
        stop()
    }
}
