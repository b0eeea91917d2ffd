import Logging
import ServiceLifecycle
import Synchronization

/// Collects consumer-group lag in the background: every `interval` it reads the watched
/// groups' committed offsets and their partitions' offset ranges (within `timeout`), feeds
/// the ``LagTracker`` and publishes a ``Status``. Reading ``status`` never waits on Kafka.
///
/// A failed round (cluster unreachable, timeout, a group the cluster could not answer for)
/// publishes a status that is down and carries no snapshot, so stale lag is never served
/// as current; the partitions' windows are kept and the next good round carries on.
///
/// ```swift
/// let collector = try LagCollector(settings, configuration: .init(groups: try NameFilter(["orders-.*"])))
/// let group = ServiceGroup(services: [collector, …], logger: logger)   // or: try await collector.run()
/// collector.status.snapshot?.group("orders-eu")?.maxLagSeconds
/// ```
public final class LagCollector: Service, Sendable {
    /// What to watch and how often.
    public struct Configuration: Sendable {
        /// The groups to watch.
        public var groups: NameFilter
        /// The topics to watch.
        public var topics: NameFilter
        /// Time between the starts of two rounds.
        public var interval: Duration
        /// The most one round may take.
        public var timeout: Duration
        /// Samples kept per partition for the lag in time (``LagEstimator``).
        public var windowSize: Int

        /// Every group and topic, a round every 5 s of at most 5 s, 60 samples a partition.
        public init(
            groups: NameFilter = .all, topics: NameFilter = .all, interval: Duration = .seconds(5),
            timeout: Duration = .seconds(5), windowSize: Int = 60
        ) {
            self.groups = groups
            self.topics = topics
            self.interval = interval
            self.timeout = timeout
            self.windowSize = windowSize
        }

        func validate() throws(KafkaError) {
            guard interval > .zero else {
                throw KafkaError(
                    .invalidConfiguration, "the lag collector's interval must be positive, got \(interval)")
            }
            guard timeout > .zero else {
                throw KafkaError(.invalidConfiguration, "the lag collector's timeout must be positive, got \(timeout)")
            }
            guard windowSize >= 2 else {
                throw KafkaError(
                    .invalidConfiguration,
                    "the lag collector's window must keep at least 2 samples (to interpolate), got \(windowSize)")
            }
        }
    }

    /// What the last round found.
    public struct Status: Sendable {
        /// Rounds finished so far.
        public let rounds: Int
        /// The lag found by the last round; nil when it failed, or before the first.
        public let snapshot: LagSnapshot?
        /// Why the last round failed; nil when it succeeded, or before the first.
        public let error: KafkaError?
        /// How long the last round took.
        public let duration: Duration?
        /// When the last successful round finished.
        public let lastSuccess: ContinuousClock.Instant?

        /// Whether the last round read the cluster.
        public var isUp: Bool { snapshot != nil }

        /// Why the collector is not healthy at `now`, or nil when it is: the last round
        /// succeeded, no longer than `maxAge` ago.
        public func problem(at now: ContinuousClock.Instant, maxAge: Duration) -> String? {
            guard rounds > 0 else { return "no collection round has finished yet" }
            if let error { return "the last collection round failed: \(error.message)" }
            guard let lastSuccess, now - lastSuccess <= maxAge else {
                return "no collection round has finished in \(maxAge)"
            }
            return nil
        }
    }

    private struct State {
        var status = Status(rounds: 0, snapshot: nil, error: nil, duration: nil, lastSuccess: nil)
        var tracker: LagTracker
        var subscribers: [Int: AsyncStream<Status>.Continuation] = [:]
        var nextSubscriber = 0
        /// Whether ``LagCollector/run()`` was called: its end closes the client, so it runs once.
        var ran = false
    }

    /// How this collector watches.
    public let configuration: Configuration
    private let reader: LagReader
    private let state: Mutex<State>
    private let logger: Logger

    /// A collector connecting with `settings`' properties (its group id is not used). Throws
    /// `.invalidConfiguration` for bad properties or configuration. Nothing is read until ``run()`` or ``collect()``.
    public init<Key, Value>(
        _ settings: ConsumerSettings<Key, Value>, configuration: Configuration = .init(),
        logger: Logger = Logger(label: "reactive-kafka.lag")
    ) throws(KafkaError) {
        try settings.validate()
        try configuration.validate()
        self.configuration = configuration
        self.reader = try LagReader(properties: settings.properties, timeout: configuration.timeout)
        self.state = Mutex(State(tracker: LagTracker(windowSize: configuration.windowSize)))
        self.logger = logger
    }

    /// The status of the last round; never waits.
    public var status: Status { state.withLock { $0.status } }

    /// Every status published from now on (the newest one if the reader falls behind);
    /// finishes when ``run()`` returns.
    public func statuses() -> AsyncStream<Status> {
        let (stream, continuation) = AsyncStream.makeStream(of: Status.self, bufferingPolicy: .bufferingNewest(1))
        let id = state.withLock { s in
            defer { s.nextSubscriber += 1 }
            s.subscribers[s.nextSubscriber] = continuation
            return s.nextSubscriber
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    /// Runs a round every ``Configuration/interval`` until the task is cancelled or a graceful
    /// shutdown begins (a round under way finishes first, within ``Configuration/timeout``),
    /// then closes the client. A collector runs once: a second call throws
    /// ``KafkaError/Kind/illegalState`` (make a new collector).
    public func run() async throws {
        let first = state.withLock { s in
            defer { s.ran = true }
            return !s.ran
        }
        guard first else {
            throw KafkaError(
                .illegalState,
                "this LagCollector already ran and closed its client: a collector runs once; create a new one")
        }
        defer {
            reader.close()
            let subscribers = state.withLock { s in
                defer { s.subscribers.removeAll() }
                return s.subscribers.values
            }
            for subscriber in subscribers { subscriber.finish() }
        }
        try? await cancelWhenGracefulShutdown {
            var next = ContinuousClock.now
            while !Task.isCancelled {
                _ = await self.collect()
                next = max(next + self.configuration.interval, .now)
                try await Task.sleep(until: next, clock: .continuous)
            }
        }
    }

    /// Runs one round now and returns (and publishes) its status.
    @discardableResult
    public func collect() async -> Status {
        let started = ContinuousClock.now
        let result: Result<LagReading, KafkaError>
        do {
            result = .success(try await reader.read(groups: configuration.groups, topics: configuration.topics))
        } catch {
            result = .failure(error)
        }
        let finished = ContinuousClock.now
        let (status, subscribers, wasUp) = state.withLock { s in
            let wasUp = s.status.isUp
            switch result {
            case .success(let reading):
                s.status = Status(
                    rounds: s.status.rounds + 1, snapshot: s.tracker.update(reading, at: finished), error: nil,
                    duration: finished - started, lastSuccess: finished)
            case .failure(let error):
                s.status = Status(
                    rounds: s.status.rounds + 1, snapshot: nil, error: error, duration: finished - started,
                    lastSuccess: s.status.lastSuccess)
            }
            return (s.status, Array(s.subscribers.values), wasUp)
        }
        if let error = status.error, wasUp || status.rounds == 1 {
            logger.warning("lag collection failed: \(error)")
        } else if status.isUp, !wasUp, status.rounds > 1 {
            logger.info("lag collection recovered")
        }
        for subscriber in subscribers { subscriber.yield(status) }
        return status
    }
}
