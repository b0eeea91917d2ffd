import CRdKafka
import ReactiveKafka

/// Small helpers for the places where `rkafka` talks to librdkafka directly:
/// the raw benchmark baselines and, until the connector's producer lands, `rkafka produce`.
enum RawClient {
    /// A new `rd_kafka_conf_t` with `properties` applied, in order. The caller owns it.
    static func conf(_ properties: [(String, String)], client: String) throws(KafkaError) -> OpaquePointer {
        guard let conf = rd_kafka_conf_new() else {
            throw KafkaError(.fatal, "librdkafka could not allocate a configuration")
        }
        var errstr = [CChar](repeating: 0, count: 512)
        for (key, value) in properties {
            let result = rd_kafka_conf_set(conf, key, value, &errstr, errstr.count)
            if result != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                throw KafkaError(
                    .invalidConfiguration,
                    "\(client) setting \"\(key)\"=\"\(value)\" rejected: \(String(cString: errstr))"
                )
            }
        }
        return conf
    }

    /// A new client of `type` owning `conf` (consumed even on failure).
    static func client(_ type: rd_kafka_type_t, _ conf: OpaquePointer, client: String) throws(KafkaError)
        -> OpaquePointer
    {
        var errstr = [CChar](repeating: 0, count: 512)
        guard let handle = rd_kafka_new(type, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(.fatal, "could not create the \(client): \(String(cString: errstr))")
        }
        return handle
    }

    /// librdkafka's description of `err`.
    static func describe(_ err: rd_kafka_resp_err_t) -> String { String(cString: rd_kafka_err2str(err)) }

    /// Creates `topic` with `partitions` partitions through the Admin API (real clusters).
    ///
    /// Returns `false` when the cluster does not support `CreateTopics` (librdkafka's mock
    /// cluster), in which case the topic is auto-created with the broker's default count
    /// on first use. An existing topic is not an error.
    static func createTopic(bootstrapServers: String, topic: String, partitions: Int, timeout: Duration = .seconds(30))
        throws(KafkaError) -> Bool
    {
        let conf = try conf([("bootstrap.servers", bootstrapServers), ("log_level", "3")], client: "admin client")
        let admin = try client(RD_KAFKA_PRODUCER, conf, client: "admin client")
        defer { rd_kafka_destroy(admin) }
        // librdkafka's mock cluster (`rkafka broker`) names a controller that is not one of its
        // brokers and never answers CreateTopics: detect that instead of waiting out the timeout.
        guard try hasReachableController(admin, bootstrapServers: bootstrapServers, timeout: timeout) else {
            return false
        }
        let queue = rd_kafka_queue_new(admin)
        defer { rd_kafka_queue_destroy(queue) }

        var errstr = [CChar](repeating: 0, count: 512)
        guard let newTopic = rd_kafka_NewTopic_new(topic, Int32(partitions), -1, &errstr, errstr.count) else {
            throw KafkaError(.invalidConfiguration, "topic \(topic): \(String(cString: errstr))")
        }
        defer { rd_kafka_NewTopic_destroy(newTopic) }
        var topics: [OpaquePointer?] = [newTopic]
        rd_kafka_CreateTopics(admin, &topics, 1, nil, queue)
        guard let event = rd_kafka_queue_poll(queue, timeout.wholeMilliseconds) else {
            throw KafkaError(
                .brokerUnreachable, "creating topic \(topic): no answer from \(bootstrapServers) within \(timeout)")
        }
        defer { rd_kafka_event_destroy(event) }
        let requestError = rd_kafka_event_error(event)
        if requestError == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE { return false }
        if requestError != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(
                .kafka, "creating topic \(topic): \(String(cString: rd_kafka_event_error_string(event)))",
                code: Int32(requestError.rawValue))
        }
        var count = 0
        guard let result = rd_kafka_event_CreateTopics_result(event),
            let results = rd_kafka_CreateTopics_result_topics(result, &count), count == 1
        else { return true }
        let err = rd_kafka_topic_result_error(results[0])
        switch err {
        case RD_KAFKA_RESP_ERR_NO_ERROR, RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS: return true
        case RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE, RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION,
            RD_KAFKA_RESP_ERR_INVALID_REQUEST:
            return false
        default:
            let message = rd_kafka_topic_result_error_string(results[0]).map { String(cString: $0) } ?? describe(err)
            throw KafkaError(.kafka, "creating topic \(topic): \(message)", code: Int32(err.rawValue))
        }
    }
}

extension RawClient {
    /// Whether the cluster's controller (which serves CreateTopics) is one of its brokers.
    static func hasReachableController(_ client: OpaquePointer, bootstrapServers: String, timeout: Duration)
        throws(KafkaError) -> Bool
    {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(client, 0, nil, &metadata, timeout.wholeMilliseconds)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            throw KafkaError(
                .brokerUnreachable, "no metadata from \(bootstrapServers): \(describe(err))", code: Int32(err.rawValue))
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        let controller = rd_kafka_controllerid(client, timeout.wholeMilliseconds)
        let brokers = UnsafeBufferPointer(start: metadata.pointee.brokers, count: Int(metadata.pointee.broker_cnt))
        return brokers.contains { $0.id == controller }
    }
}

extension Duration {
    /// Whole milliseconds, saturating, for librdkafka's `int` timeouts.
    var wholeMilliseconds: Int32 {
        let (seconds, attoseconds) = components
        return Int32(clamping: max(0, seconds * 1000 + attoseconds / 1_000_000_000_000_000))
    }
}
