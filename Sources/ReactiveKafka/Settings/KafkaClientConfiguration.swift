import CRdKafka

/// Builds librdkafka configuration objects from string properties, turning
/// every rejection into a typed error that carries librdkafka's reason.
enum KafkaClientConfiguration {
    /// A new `rd_kafka_conf_t` with `properties` applied. The caller owns it.
    static func make(_ properties: [String: String], client: String) throws(KafkaError) -> OpaquePointer {
        guard let conf = rd_kafka_conf_new() else {
            throw KafkaError(.fatal, "librdkafka could not allocate a configuration")
        }
        // Sorted so that the first error reported is deterministic.
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            do {
                try set(conf, key, value, client: client)
            } catch {
                rd_kafka_conf_destroy(conf)
                throw error
            }
        }
        return conf
    }

    static func set(_ conf: OpaquePointer, _ key: String, _ value: String, client: String) throws(KafkaError) {
        var buffer = [CChar](repeating: 0, count: 512)
        let result = rd_kafka_conf_set(conf, key, value, &buffer, buffer.count)
        guard result != RD_KAFKA_CONF_OK else { return }
        let reason = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        let what = result == RD_KAFKA_CONF_UNKNOWN ? "unknown property" : "invalid value"
        throw KafkaError(
            .invalidConfiguration,
            "\(client) setting \"\(key)\"=\"\(value)\" rejected (\(what)): \(reason). "
                + "See librdkafka's CONFIGURATION.md for valid properties and values."
        )
    }

    /// Checks that `properties` are all accepted by librdkafka.
    static func validate(_ properties: [String: String], client: String) throws(KafkaError) {
        let conf = try make(properties, client: client)
        rd_kafka_conf_destroy(conf)
    }
}

extension Duration {
    /// Whole milliseconds, rounded up, saturating at `Int32.max`, for librdkafka's `int` timeouts.
    var milliseconds: Int32 {
        let (seconds, attoseconds) = components
        let ms = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: max(0, ms))
    }

    /// Seconds as a floating-point number, for logs and metrics.
    var seconds: Double {
        let (s, a) = components
        return Double(s) + Double(a) / 1e18
    }
}
