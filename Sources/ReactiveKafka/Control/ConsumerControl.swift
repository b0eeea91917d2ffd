import Synchronization

/// Controls a running Kafka source: Alpakka's `Consumer.Control`.
///
/// - ``stop()`` completes the source (no new records are emitted) but keeps
///   the consumer in its group, so that offsets of records still in flight
///   downstream can be committed. It closes at ``shutdown()`` (the drain does
///   that once the stream is done), or `stopTimeout` later at the latest.
/// - A stream that ends without `stop()` (failure, cancellation, `break`,
///   `take(n)`, its iterator dropped) closes its consumer as soon as its
///   committers have flushed: the consumer never outlives its stream.
/// - ``shutdown()`` stops, leaves the group, and closes the consumer.
/// - ``drainAndShutdown(_:)`` (and ``DrainingControl``) do stop → wait for the
///   stream to complete → shutdown: the graceful path for SIGTERM.
public final class ConsumerControl: Sendable {
    private enum Slot {
        case notStarted
        case running(ConsumerEngine)
        case failedToStart(KafkaError)
        case stoppedBeforeStart
        /// No consumer: a stand-in (the testkit's fake source) takes stop and shutdown.
        case standIn(any ConsumerControlStandIn)
    }

    private let slot: Mutex<Slot>
    private let claimed = Atomic<Bool>(false)
    private let draining = Atomic<Bool>(false)
    private let start: @Sendable () throws(KafkaError) -> ConsumerEngine
    private let stopTimeout: Duration
    let events: RebalanceEventHub
    let healthHub: ConsumerHealthHub
    /// Set for a source sharing a ``KafkaConsumer``: stopping it completes this
    /// source only, shutting it down lets its partitions go; the consumer stays.
    let sharedSource: UInt64?

    init(
        stopTimeout: Duration, events: RebalanceEventHub = RebalanceEventHub(),
        health: ConsumerHealthHub = ConsumerHealthHub(),
        sharedSource: UInt64? = nil, start: @escaping @Sendable () throws(KafkaError) -> ConsumerEngine
    ) {
        self.slot = Mutex(.notStarted)
        self.start = start
        self.healthHub = health
        self.stopTimeout = stopTimeout
        self.events = events
        self.sharedSource = sharedSource
    }

    /// A control driving `standIn` instead of a consumer (see ``ConsumerControlStandIn``):
    /// its health follows the stand-in's events; ``withConsumer(_:)`` has no consumer to offer.
    package init(standIn: any ConsumerControlStandIn) {
        self.slot = Mutex(.standIn(standIn))
        self.start = { () throws(KafkaError) -> ConsumerEngine in
            throw KafkaError(
                .illegalState, "this control stands in for a consumer (testkit): there is no consumer to start")
        }
        let health = ConsumerHealthHub()
        let events = RebalanceEventHub()
        self.healthHub = health
        self.stopTimeout = .zero
        self.events = events
        self.sharedSource = nil
        standIn.attach { event in
            switch event {
            case .started:
                health.publish(.consuming)
            case .closed:
                health.publish(.stopped)
                health.finish()
                events.finish()
            }
        }
    }

    /// The running engine for a partition's sub-stream (the partitioned source started it).
    func subStreamEngine() throws(KafkaError) -> ConsumerEngine? {
        try slot.withLock { slot throws(KafkaError) -> ConsumerEngine? in
            switch slot {
            case .running(let engine): return engine
            case .failedToStart(let error): throw error
            case .notStarted, .stoppedBeforeStart, .standIn: return nil
            }
        }
    }

    /// The partitions' changes from now on, as they happen: `assigned`,
    /// `revoked`, `lost`. Each call returns a new stream; it finishes when the
    /// consumer closes. Events wait in the stream for an observer that lags
    /// (rebalances are rare). Observing never delays a rebalance: to act
    /// before partitions move, use a ``PartitionAssignmentHandler``.
    public func rebalanceEvents() -> AsyncStream<RebalanceEvent> {
        events.subscribe()
    }

    /// Runs `body` on the consumer's own thread, between batches, with the
    /// ``RestrictedConsumer`` (seek, committed offsets, positions, watermarks),
    /// and returns its result or rethrows its error. Throws a ``KafkaError`` if
    /// the consumer has not started or is shut down.
    ///
    /// Returns or throws within a bound: a call still queued when the consumer
    /// closes throws ``KafkaError/Kind/shutDown``, and one whose task is
    /// cancelled before it runs throws `CancellationError`.
    public func withConsumer<T: Sendable>(_ body: @escaping @Sendable (RestrictedConsumer) throws -> T) async throws
        -> T
    {
        guard let engine else {
            if standIn != nil {
                throw KafkaError(
                    .illegalState,
                    "this control stands in for a consumer (testkit): there is no consumer to run code with")
            }
            throw KafkaError(.illegalState, "the consumer has not started yet: it starts when the stream first pulls")
        }
        let result: Result<T, any Error>
        do {
            result = try await engine.withConsumer { consumer throws(KafkaError) in Result { try body(consumer) } }
        } catch {
            throw error.asCancellation
        }
        return try result.get()
    }

    /// Starts the consumer for the one iterator allowed, or explains why not.
    func claimEngine() throws(KafkaError) -> ConsumerEngine? {
        guard claimed.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else {
            throw KafkaError(
                .illegalState,
                "this Kafka source is already running: a source can be run once; create a new source for another stream"
            )
        }
        return try slot.withLock { slot throws(KafkaError) -> ConsumerEngine? in
            switch slot {
            case .stoppedBeforeStart:
                return nil
            case .failedToStart(let error):
                throw error
            case .running(let engine):
                return engine
            case .standIn:
                throw KafkaError(
                    .illegalState, "this control stands in for a consumer (testkit): no Kafka source runs with it")
            case .notStarted:
                do {
                    let engine = try start()
                    slot = .running(engine)
                    return engine
                } catch {
                    let failure = (error as? KafkaError) ?? KafkaError(.fatal, "starting the consumer: \(error)")
                    slot = .failedToStart(failure)
                    throw failure
                }
            }
        }
    }

    /// True once the consumer closed by leaving its group (not by timing out).
    var leftGroupCleanly: Bool { engine?.leftGroupCleanly.load(ordering: .acquiring) ?? false }

    private var engine: ConsumerEngine? {
        slot.withLock { if case .running(let e) = $0 { return e } else { return nil } }
    }

    private var standIn: (any ConsumerControlStandIn)? {
        slot.withLock { if case .standIn(let s) = $0 { return s } else { return nil } }
    }

    /// Completes the source; the consumer stays in its group so commits can
    /// still land, until ``shutdown()`` (or `stopTimeout` passes).
    public func stop() {
        if let standIn { return standIn.stop() }
        guard let engine = runningEngineOrStopBeforeStart() else { return }
        if let id = sharedSource {
            engine.stopSubset(id)
            return
        }
        // A drain shuts the consumer down itself once the stream is done; otherwise it goes
        // stopTimeout later at the latest (the engine's thread keeps that deadline).
        engine.stop(closeAfter: draining.load(ordering: .acquiring) ? nil : stopTimeout)
    }

    /// The running engine; a source that has not started yet is marked stopped instead
    /// (its first pull then completes without ever creating a consumer).
    private func runningEngineOrStopBeforeStart() -> ConsumerEngine? {
        slot.withLock { slot in
            switch slot {
            case .running(let e): return e
            case .notStarted:
                slot = .stoppedBeforeStart
                return nil
            default: return nil
            }
        }
    }

    /// Stops the source, leaves the group, and closes the consumer. Returns
    /// when the consumer is closed (bounded by `closeTimeout`). Idempotent.
    public func shutdown() async {
        if let standIn { return await standIn.shutdown() }
        guard let engine = runningEngineOrStopBeforeStart() else { return }
        if let id = sharedSource {
            engine.stopSubset(id)
            _ = try? await engine.withConsumer { _ throws(KafkaError) in engine.detach(id) }
            return
        }
        await engine.shutdown()
    }

    /// True once the consumer is closed (or was stopped before it started).
    public var isShutdown: Bool {
        slot.withLock { slot in
            switch slot {
            case .running(let e): return e.phase == .closed || sharedSource.map { e.isStopped($0) } == true
            case .notStarted: return false
            case .failedToStart, .stoppedBeforeStart: return true
            case .standIn(let standIn): return standIn.isShutdown
            }
        }
    }

    /// A drain is under way: `stop()` leaves the closing to it (no stop timeout).
    func markDraining() {
        draining.store(true, ordering: .releasing)
    }

    /// Stops the source, waits for `streamCompletion` (everything in flight is
    /// processed and committed), then shuts the consumer down. Returns the
    /// stream's result, or rethrows its error after shutting down.
    public func drainAndShutdown<Result: Sendable>(_ streamCompletion: Task<Result, any Error>) async throws -> Result {
        markDraining()
        stop()
        let result = await streamCompletion.result
        await shutdown()
        return try result.get()
    }

    /// The consumer's health now, for readiness and liveness probes (see ``ConsumerHealth``).
    /// A source sharing a ``KafkaConsumer`` reports the shared consumer's health.
    public var health: ConsumerHealth {
        slot.withLock { slot in
            switch slot {
            case .failedToStart(let error): return .failed(error)
            case .stoppedBeforeStart: return .stopped
            case .notStarted, .running, .standIn: return healthHub.current
            }
        }
    }

    /// The current health, then each change as it happens; the stream finishes after the
    /// consumer closed. An observer that falls behind gets the newest value (not every step).
    /// Observing never slows the consumer.
    public func healthChanges() -> AsyncStream<ConsumerHealth> {
        healthHub.subscribe()
    }

    /// The consumer's current metrics: librdkafka statistics (when
    /// `statisticsInterval` is set) and the connector's buffer figures.
    public var metrics: ConsumerMetrics {
        guard let engine else {
            return ConsumerMetrics(statisticsJSON: nil, bufferedBytes: 0, bufferedBytesHighWater: 0)
        }
        let buffered = engine.bufferedBytes
        return ConsumerMetrics(
            statisticsJSON: engine.statisticsJSON, bufferedBytes: buffered.current,
            bufferedBytesHighWater: buffered.highWater)
    }
}
