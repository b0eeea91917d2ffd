import CRdKafka

/// Builds librdkafka configuration objects and clients from string properties,
/// turning every rejection into a typed error that carries librdkafka's reason
/// and never a secret's value (``SecretProperties``).
enum KafkaClientConfiguration {
    /// A new `rd_kafka_conf_t` with `properties` applied, logging through
    /// ``SecretScrubbingLog``. The caller owns it.
    static func make(_ properties: [String: String], client: String) throws(KafkaError) -> OpaquePointer {
        guard let conf = rd_kafka_conf_new() else {
            throw KafkaError(.fatal, "librdkafka could not allocate a configuration")
        }
        SecretScrubbingLog.install(on: conf)
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
        throw rejection(
            key: key, value: value, unknown: result == RD_KAFKA_CONF_UNKNOWN, reason: reason, client: client)
    }

    /// The error for a property librdkafka refused. It names the key and librdkafka's
    /// reason; it quotes the value only for a known, non-secret property, since the
    /// value of an unknown key is beside the point and may be a secret under a misspelt
    /// name. librdkafka's reason is scrubbed too: it quotes some values itself.
    static func rejection(key: String, value: String, unknown: Bool, reason: String, client: String) -> KafkaError {
        let hideValue = unknown || SecretProperties.isSecret(key)
        let shownReason = hideValue ? SecretProperties.scrub(reason, removing: [value]) : reason
        let setting = hideValue ? "\"\(key)\"" : "\"\(key)\"=\"\(value)\""
        let what = unknown ? "unknown property" : "invalid value, or not supported by this librdkafka build"
        return KafkaError(
            .invalidConfiguration,
            "\(client) setting \(setting) rejected (\(what)): \(shownReason). "
                + "See librdkafka's CONFIGURATION.md for valid properties and values."
        )
    }

    /// A new librdkafka client of `type` owning `conf` (destroyed if creation fails).
    /// librdkafka checks some values only here (PEM keys, keystores, SASL settings) and
    /// may quote them, so its reason is scrubbed of every secret value of `properties`.
    static func newClient(
        _ type: rd_kafka_type_t, _ conf: OpaquePointer, properties: [String: String], client: String
    ) throws(KafkaError) -> OpaquePointer {
        var errstr = [CChar](repeating: 0, count: 512)
        guard let handle = rd_kafka_new(type, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            let reason = errstr.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw KafkaError(
                .invalidConfiguration,
                "librdkafka could not create the \(client): \(SecretProperties.scrub(reason, secretsOf: properties))")
        }
        return handle
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
