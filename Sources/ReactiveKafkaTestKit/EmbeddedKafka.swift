import CRdKafka
import Foundation
import ReactiveKafka
import Synchronization

/// An in-process Kafka cluster for tests, demos and benchmarks: librdkafka's
/// mock cluster, real TCP brokers on 127.0.0.1 that speak the Kafka protocol.
///
/// ```swift
/// let kafka = try EmbeddedKafka(brokers: 3)
/// try kafka.createTopic("orders", partitions: 8)
/// let settings = ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
///     .withBootstrapServers(kafka.bootstrapServers)
/// ```
///
/// Known limits (librdkafka's mock): a partition keeps at most 100,000
/// batches / 5 MB; `CreateTopics` requests are not supported (use
/// ``createTopic(_:partitions:replicationFactor:)``); transactional offsets
/// are not stored and aborted records are not filtered. Group rebalances are
/// slow with default timeouts: use ``fastGroupProperties`` in tests.
public final class EmbeddedKafka: Sendable {
    private struct Handles: @unchecked Sendable {
        var owner: OpaquePointer?
        var cluster: OpaquePointer?
    }

    private let handles: Mutex<Handles>
    /// The brokers' addresses, for `bootstrap.servers`.
    public let bootstrapServers: String
    /// How many brokers the cluster has (ids 1…brokerCount).
    public let brokerCount: Int

    /// Consumer properties that make group joins and rebalances take
    /// milliseconds instead of seconds on the embedded cluster.
    public static let fastGroupProperties: [String: String] = [
        "session.timeout.ms": "6000",
        "heartbeat.interval.ms": "100",
        "topic.metadata.refresh.interval.ms": "1000",
        "max.poll.interval.ms": "30000",
    ]

    /// Starts a cluster of `brokers` brokers.
    public init(brokers: Int = 1) throws(KafkaError) {
        guard brokers >= 1 else {
            throw KafkaError(.invalidConfiguration, "EmbeddedKafka needs at least 1 broker, got \(brokers)")
        }
        guard let conf = rd_kafka_conf_new() else { throw KafkaError(.fatal, "could not allocate a configuration") }
        var errstr = [CChar](repeating: 0, count: 512)
        _ = rd_kafka_conf_set(conf, "log_level", "0", &errstr, errstr.count)
        guard let owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(.fatal, "could not create the embedded cluster's client: \(String(cString: errstr))")
        }
        guard let cluster = rd_kafka_mock_cluster_new(owner, Int32(brokers)) else {
            rd_kafka_destroy(owner)
            throw KafkaError(.fatal, "librdkafka could not start a mock cluster of \(brokers) brokers")
        }
        self.bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
        self.brokerCount = brokers
        self.handles = Mutex(Handles(owner: owner, cluster: cluster))
    }

    /// Destroys the cluster on a thread of its own: destroying joins librdkafka's broker threads,
    /// which can take seconds under load, and the last reference is usually dropped by a task on
    /// Swift's cooperative pool, which must not block. The thread ends with the destruction, and a
    /// process's exit waits for it under the sanitizers (`rd_kafka_wait_destroyed`).
    deinit {
        Self.destroyOnAThreadOfItsOwn(takeHandles()) {}
    }

    /// Creates `topic` with `partitions` partitions.
    public func createTopic(_ topic: String, partitions: Int, replicationFactor: Int = 1) throws(KafkaError) {
        guard partitions >= 1 else {
            throw KafkaError(.invalidConfiguration, "topic \(topic) needs at least 1 partition, got \(partitions)")
        }
        guard replicationFactor >= 1, replicationFactor <= brokerCount else {
            throw KafkaError(
                .invalidConfiguration,
                "replication factor \(replicationFactor) must be between 1 and the broker count \(brokerCount)")
        }
        let err = try withCluster { rd_kafka_mock_topic_create($0, topic, Int32(partitions), Int32(replicationFactor)) }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(
                .kafka, "creating topic \(topic): \(String(cString: rd_kafka_err2str(err)))", code: Int32(err.rawValue))
        }
    }

    /// Makes the next `errors.count` requests of `api` (cluster-wide) fail with those errors, in order.
    public func failNextRequests(_ api: KafkaAPI, with errors: [KafkaErrorCode]) throws(KafkaError) {
        let codes = errors.map { rd_kafka_resp_err_t($0.rawValue) }
        try withCluster { cluster in
            codes.withUnsafeBufferPointer {
                rd_kafka_mock_push_request_errors_array(cluster, api.rawValue, codes.count, $0.baseAddress)
            }
        }
    }

    /// Makes every request of `api` fail with `error` until ``clearRequestErrors(_:)`` (`topic`-scoped errors use ``setTopicError(_:_:)``).
    public func clearRequestErrors(_ api: KafkaAPI) throws(KafkaError) {
        try withCluster { rd_kafka_mock_clear_request_errors($0, api.rawValue) }
    }

    /// Makes requests about `topic` fail with `error` (`.noError` clears it).
    public func setTopicError(_ topic: String, _ error: KafkaErrorCode) throws(KafkaError) {
        try withCluster { rd_kafka_mock_topic_set_error($0, topic, rd_kafka_resp_err_t(error.rawValue)) }
    }

    /// Takes broker `id` (1…brokerCount) down: its connections close and it refuses new ones.
    /// Throws `.illegalState` when the process is about to run out of file descriptors (see
    /// ``openFileHeadroom``), where librdkafka's mock would abort the process instead.
    public func brokerDown(_ id: Int32) throws(KafkaError) {
        try checkBroker(id)
        if let headroom = Self.openFileHeadroom(), headroom < Self.brokerDownHeadroom {
            throw KafkaError(
                .illegalState,
                "cannot take broker \(id) down: only \(headroom) file descriptors are left before the open-files limit (librdkafka's mock cluster aborts the process when it cannot open the broker's new listener); raise the limit (ulimit -n) or run fewer clients at once"
            )
        }
        try withCluster { _ = rd_kafka_mock_broker_set_down($0, id) }
    }

    /// File descriptors that should be free when a broker is taken down: librdkafka's mock closes
    /// the broker's listener and opens another on its port at once, and the clients of a parallel
    /// test suite open and close sockets meanwhile.
    static let brokerDownHeadroom = 64

    /// How many more files this process may open before its limit (`RLIMIT_NOFILE`), or nil
    /// where its open files cannot be counted. Approximate: the limit bounds descriptor numbers.
    static func openFileHeadroom() -> Int? {
        #if canImport(Glibc)
            var limit = rlimit()
            guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else {
                return nil
            }
            // Listing the directory takes a descriptor itself: failing to list it means none is left.
            guard let open = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count else {
                return 0
            }
            return Int(clamping: limit.rlim_cur) - open
        #else
            return nil
        #endif
    }

    /// Brings broker `id` back up.
    public func brokerUp(_ id: Int32) throws(KafkaError) {
        try checkBroker(id)
        try withCluster { _ = rd_kafka_mock_broker_set_up($0, id) }
    }

    /// Delays every response of broker `id` by `rtt`.
    public func setRoundTripTime(broker id: Int32, _ rtt: Duration) throws(KafkaError) {
        try checkBroker(id)
        let ms = Int32(clamping: rtt.components.seconds * 1000 + rtt.components.attoseconds / 1_000_000_000_000_000)
        try withCluster { _ = rd_kafka_mock_broker_set_rtt($0, id, ms) }
    }

    /// Moves the leadership of `topic`-`partition` to broker `id`.
    public func setLeader(_ topic: String, partition: Int32, broker id: Int32) throws(KafkaError) {
        try checkBroker(id)
        try withCluster { _ = rd_kafka_mock_partition_set_leader($0, topic, partition, id) }
    }

    /// Makes broker `id` the coordinator of `key` (a group id or a transactional id).
    public func setCoordinator(_ type: CoordinatorType, key: String, broker id: Int32) throws(KafkaError) {
        try checkBroker(id)
        try withCluster { _ = rd_kafka_mock_coordinator_set($0, type.rawValue, key, id) }
    }

    /// Stops the cluster; connected clients see the brokers go away. Idempotent.
    ///
    /// Blocks until librdkafka has joined the brokers' threads: from async code use
    /// ``shutdown()``, which waits on a thread of its own.
    public func stop() {
        Self.destroy(takeHandles())
    }

    /// Stops the cluster like ``stop()``, without holding a thread of Swift's cooperative pool
    /// while librdkafka joins the brokers' threads. Idempotent; returns once the cluster is gone.
    public func shutdown() async {
        let taken = takeHandles()
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            Self.destroyOnAThreadOfItsOwn(taken) { done.resume() }
        }
    }

    private func takeHandles() -> Handles {
        handles.withLock { h -> Handles in
            let old = h
            h = Handles(owner: nil, cluster: nil)
            return old
        }
    }

    /// Destroys `taken` on a new thread, then calls `done` there; nothing to destroy calls `done` at once.
    private static func destroyOnAThreadOfItsOwn(_ taken: Handles, then done: @escaping @Sendable () -> Void) {
        guard taken.cluster != nil || taken.owner != nil else { return done() }
        let thread = Thread {
            destroy(taken)
            done()
        }
        thread.name = "embedded-kafka-stop"
        thread.start()
    }

    private static func destroy(_ taken: Handles) {
        if let cluster = taken.cluster { rd_kafka_mock_cluster_destroy(cluster) }
        if let owner = taken.owner { rd_kafka_destroy(owner) }
    }

    private func checkBroker(_ id: Int32) throws(KafkaError) {
        guard id >= 1, id <= brokerCount else {
            throw KafkaError(.invalidConfiguration, "broker id \(id) does not exist: ids are 1…\(brokerCount)")
        }
    }

    private func withCluster<R: Sendable>(_ body: (OpaquePointer) -> R) throws(KafkaError) -> R {
        // The lock is held while librdkafka runs so that stop() cannot destroy the cluster under it.
        try handles.withLock { h throws(KafkaError) -> R in
            guard let cluster = h.cluster else { throw KafkaError(.shutDown, "the embedded cluster was stopped") }
            return body(cluster)
        }
    }

    /// Kinds of coordinator.
    public enum CoordinatorType: String, Sendable {
        /// A consumer group's coordinator.
        case group
        /// A transactional id's coordinator.
        case transaction
    }
}

/// Kafka protocol request types, for fault injection.
public struct KafkaAPI: RawRepresentable, Sendable, Hashable {
    /// The Kafka protocol's API key.
    public let rawValue: Int16
    /// The request with Kafka protocol API key `rawValue`.
    public init(rawValue: Int16) { self.rawValue = rawValue }
    /// The Produce request (API key 0).
    public static let produce = KafkaAPI(rawValue: 0)
    /// The Fetch request (API key 1).
    public static let fetch = KafkaAPI(rawValue: 1)
    /// The ListOffsets request (API key 2).
    public static let listOffsets = KafkaAPI(rawValue: 2)
    /// The Metadata request (API key 3).
    public static let metadata = KafkaAPI(rawValue: 3)
    /// The OffsetCommit request (API key 8).
    public static let offsetCommit = KafkaAPI(rawValue: 8)
    /// The OffsetFetch request (API key 9).
    public static let offsetFetch = KafkaAPI(rawValue: 9)
    /// The FindCoordinator request (API key 10).
    public static let findCoordinator = KafkaAPI(rawValue: 10)
    /// The JoinGroup request (API key 11).
    public static let joinGroup = KafkaAPI(rawValue: 11)
    /// The Heartbeat request (API key 12).
    public static let heartbeat = KafkaAPI(rawValue: 12)
    /// The LeaveGroup request (API key 13).
    public static let leaveGroup = KafkaAPI(rawValue: 13)
    /// The SyncGroup request (API key 14).
    public static let syncGroup = KafkaAPI(rawValue: 14)
    /// The InitProducerId request (API key 22).
    public static let initProducerId = KafkaAPI(rawValue: 22)
    /// The AddPartitionsToTxn request (API key 24).
    public static let addPartitionsToTxn = KafkaAPI(rawValue: 24)
    /// The AddOffsetsToTxn request (API key 25).
    public static let addOffsetsToTxn = KafkaAPI(rawValue: 25)
    /// The EndTxn request (API key 26).
    public static let endTxn = KafkaAPI(rawValue: 26)
    /// The TxnOffsetCommit request (API key 28).
    public static let txnOffsetCommit = KafkaAPI(rawValue: 28)
}
