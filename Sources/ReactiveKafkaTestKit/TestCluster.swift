import CRdKafka
import Foundation
import ReactiveKafka
import Synchronization

/// The cluster a test runs against: the in-process ``EmbeddedKafka`` by
/// default, or an external Kafka cluster when `KAFKA_BOOTSTRAP_SERVERS` is set
/// (`make test-external`).
///
/// ```swift
/// let cluster = try TestCluster()
/// let topic = try cluster.createTopic("orders", partitions: 8)  // "orders" or "orders-<run>-<n>"
/// let settings = ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
///     .withBootstrapServers(cluster.bootstrapServers)
///     .withGroupId(cluster.name("g-orders"))
///     .withProperties(cluster.groupProperties)
/// ```
///
/// On an external cluster every topic and group name is made unique per run
/// (the cluster outlives the test and may hold earlier runs' topics and
/// groups), topics are created with librdkafka's admin API
/// (`rd_kafka_CreateTopics`), and group timeouts are ones a Kafka broker
/// accepts (``TestClusterMode/sessionTimeoutMilliseconds``). Fault injection
/// exists only on the embedded cluster: ``embedded`` is nil on an external one,
/// and tests that need it are enabled with `.enabled(if: TestClusterMode.isEmbedded)`.
public final class TestCluster: Sendable {
    /// The brokers' addresses, for `bootstrap.servers`.
    public let bootstrapServers: String
    /// The in-process cluster, for fault injection; nil on an external cluster.
    public let embedded: EmbeddedKafka?

    /// Starts an embedded cluster of `brokers` brokers, or connects to the external one.
    /// - Parameter brokers: the embedded cluster's size (an external cluster is what it is).
    public init(brokers: Int = 1) throws(KafkaError) {
        if let servers = TestClusterMode.externalBootstrapServers {
            bootstrapServers = servers
            embedded = nil
        } else {
            let kafka = try EmbeddedKafka(brokers: brokers)
            bootstrapServers = kafka.bootstrapServers
            embedded = kafka
        }
    }

    /// Whether this is an external cluster.
    public var isExternal: Bool { embedded == nil }

    /// The embedded cluster, for tests that inject faults; such tests run only in embedded mode.
    public func requireEmbedded() throws(KafkaError) -> EmbeddedKafka {
        guard let embedded else {
            throw KafkaError(
                .invalidConfiguration,
                "this test injects faults into librdkafka's mock cluster: it cannot run against the external cluster \(bootstrapServers)"
            )
        }
        return embedded
    }

    /// A topic or group name for this run: `base` on the embedded cluster (each test
    /// starts a fresh one), `base-<run>-<n>` on an external cluster.
    public func name(_ base: String) -> String {
        guard isExternal else { return base }
        return "\(base)-\(TestClusterMode.runID)-\(TestClusterMode.names.add(1, ordering: .relaxed).newValue)"
    }

    /// Creates a topic named after `base` (see ``name(_:)``) and returns its name.
    /// On an external cluster it is created through the admin API, and the call returns
    /// once the broker has created it.
    @discardableResult
    public func createTopic(_ base: String, partitions: Int, replicationFactor: Int = 1) throws(KafkaError) -> String {
        try createTopic(named: name(base), partitions: partitions, replicationFactor: replicationFactor)
    }

    /// Creates `topic` with exactly that name (made with ``name(_:)`` for a run-unique one).
    @discardableResult
    public func createTopic(named topic: String, partitions: Int, replicationFactor: Int = 1) throws(KafkaError)
        -> String
    {
        if let embedded {
            try embedded.createTopic(topic, partitions: partitions, replicationFactor: replicationFactor)
        } else {
            try KafkaAdmin.createTopic(
                topic, partitions: partitions, replicationFactor: replicationFactor, bootstrapServers: bootstrapServers)
        }
        return topic
    }

    /// Consumer properties that make group joins and rebalances fast on this cluster:
    /// ``EmbeddedKafka/fastGroupProperties`` on the embedded cluster; on an external one
    /// the mode's session timeout (a Kafka broker refuses one below
    /// `group.min.session.timeout.ms`, 6 s by default) with a heartbeat a tenth of it.
    public var groupProperties: [String: String] {
        isExternal ? TestClusterMode.externalGroupProperties : EmbeddedKafka.fastGroupProperties
    }
}

/// How the tests are run: against the embedded cluster (`make test`) or an
/// external one (`KAFKA_BOOTSTRAP_SERVERS=host:port make test-external`).
public enum TestClusterMode {
    /// `KAFKA_BOOTSTRAP_SERVERS`, when set and not empty: the external cluster to test against.
    public static let externalBootstrapServers: String? = {
        guard
            let value = ProcessInfo.processInfo.environment["KAFKA_BOOTSTRAP_SERVERS"]?
                .trimmingCharacters(in: .whitespaces), !value.isEmpty
        else { return nil }
        return value
    }()

    /// Whether the tests run against an external cluster.
    public static var isExternal: Bool { externalBootstrapServers != nil }
    /// Whether the tests run against the embedded cluster (the default).
    public static var isEmbedded: Bool { !isExternal }

    /// The consumer session timeout on an external cluster: `KAFKA_TEST_SESSION_TIMEOUT_MS`,
    /// default 6000 (Kafka's default `group.min.session.timeout.ms`; a broker configured
    /// with a lower minimum allows a lower value, and faster tests).
    public static let sessionTimeoutMilliseconds: Int = {
        if let text = ProcessInfo.processInfo.environment["KAFKA_TEST_SESSION_TIMEOUT_MS"], let value = Int(text),
            value > 0
        {
            return value
        }
        return 6000
    }()

    /// Consumer group timeouts for an external cluster: the mode's session timeout, a
    /// heartbeat a tenth of it, and quick metadata refreshes.
    public static var externalGroupProperties: [String: String] {
        let session = sessionTimeoutMilliseconds
        return [
            "session.timeout.ms": String(session),
            "heartbeat.interval.ms": String(max(100, session / 10)),
            "topic.metadata.refresh.interval.ms": "1000",
            "max.poll.interval.ms": String(max(30_000, session * 2)),
        ]
    }

    /// Names made so far in this process, to keep them unique within the run (every cluster of the run).
    static let names = Atomic<Int>(0)

    /// Distinguishes this run's topics and groups from earlier runs' on the same cluster.
    public static let runID: String = {
        let millis = UInt64(Date().timeIntervalSince1970 * 1000)
        return "\(String(millis, radix: 36))\(String(UInt32(truncatingIfNeeded: getpid()), radix: 36))"
    }()
}

/// Topic administration on a Kafka cluster through librdkafka's admin API.
public enum KafkaAdmin {
    /// Creates `topic`, waiting (at most `timeout`) for the broker to finish creating it
    /// (the request's operation timeout: the controller answers once the partitions exist).
    /// `clientProperties` are added to the admin client's (security settings, for one).
    public static func createTopic(
        _ topic: String, partitions: Int, replicationFactor: Int = 1, bootstrapServers: String,
        timeout: Duration = .seconds(30),
        clientProperties: [String: String] = [:]
    ) throws(KafkaError) {
        guard partitions >= 1 else {
            throw KafkaError(.invalidConfiguration, "topic \(topic) needs at least 1 partition, got \(partitions)")
        }
        let timeoutMs = Int32(clamping: timeout.components.seconds * 1000)
        var errstr = [CChar](repeating: 0, count: 512)
        guard let conf = rd_kafka_conf_new() else {
            throw KafkaError(.fatal, "admin client: could not allocate a configuration")
        }
        let properties = clientProperties.merging(
            ["bootstrap.servers": bootstrapServers, "log_level": "0"], uniquingKeysWith: { _, new in new })
        for (key, value) in properties
        where rd_kafka_conf_set(conf, key, value, &errstr, errstr.count) != RD_KAFKA_CONF_OK {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(
                .invalidConfiguration,
                "admin client: \(SecretProperties.scrub(String(cString: errstr), secretsOf: properties))")
        }
        guard let client = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errstr, errstr.count) else {
            throw KafkaError(
                .fatal, "admin client: \(SecretProperties.scrub(String(cString: errstr), secretsOf: properties))")
        }
        defer { rd_kafka_destroy(client) }
        guard
            let newTopic = rd_kafka_NewTopic_new(
                topic, Int32(partitions), Int32(replicationFactor), &errstr, errstr.count)
        else {
            throw KafkaError(.invalidConfiguration, "topic \(topic): \(String(cString: errstr))")
        }
        defer { rd_kafka_NewTopic_destroy(newTopic) }
        let queue = rd_kafka_queue_new(client)!
        defer { rd_kafka_queue_destroy(queue) }
        let options = rd_kafka_AdminOptions_new(client, RD_KAFKA_ADMIN_OP_CREATETOPICS)!
        defer { rd_kafka_AdminOptions_destroy(options) }
        _ = rd_kafka_AdminOptions_set_request_timeout(options, timeoutMs, &errstr, errstr.count)
        // Wait on the broker until the topic is created, not only accepted.
        _ = rd_kafka_AdminOptions_set_operation_timeout(options, timeoutMs, &errstr, errstr.count)
        var topics: [OpaquePointer?] = [newTopic]
        rd_kafka_CreateTopics(client, &topics, 1, options, queue)
        guard let event = rd_kafka_queue_poll(queue, timeoutMs + 5000) else {
            throw KafkaError(
                .brokerUnreachable, "creating topic \(topic) on \(bootstrapServers): no answer within \(timeout)")
        }
        defer { rd_kafka_event_destroy(event) }
        let requestError = rd_kafka_event_error(event)
        if requestError != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(
                .kafka,
                "creating topic \(topic) on \(bootstrapServers): \(String(cString: rd_kafka_event_error_string(event)))",
                code: Int32(requestError.rawValue))
        }
        guard let result = rd_kafka_event_CreateTopics_result(event) else {
            throw KafkaError(
                .fatal, "creating topic \(topic): unexpected admin event \(String(cString: rd_kafka_event_name(event)))"
            )
        }
        var count = 0
        if let results = rd_kafka_CreateTopics_result_topics(result, &count) {
            for i in 0..<count {
                let err = rd_kafka_topic_result_error(results[i])
                if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                    let reason =
                        rd_kafka_topic_result_error_string(results[i]).map { String(cString: $0) }
                        ?? String(cString: rd_kafka_err2str(err))
                    throw KafkaError(
                        .kafka, "creating topic \(topic) on \(bootstrapServers): \(reason)", code: Int32(err.rawValue))
                }
            }
        }
    }
}
