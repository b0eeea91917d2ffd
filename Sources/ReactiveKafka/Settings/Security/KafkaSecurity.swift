/// How a client reaches its brokers: in clear or over TLS, and how it authenticates (SASL,
/// or a TLS client certificate). Set it with ``ConsumerSettings/withSecurity(_:)`` or
/// ``ProducerSettings/withSecurity(_:)``, which check it and map it to librdkafka's properties.
///
/// ```swift
/// let settings = try ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
///     .withBootstrapServers("kafka-1.example.com:9093")
///     .withSecurity(.sasl(.scramSHA512(username: "billing", password: password), tls: KafkaTLS(trust: .file("/etc/kafka/ca.pem"))))
/// ```
///
/// Its description, reflection and every error about it leave secrets out (passwords, private
/// keys and their passwords, client secrets), and so do the settings it is mapped into
/// (``SecretProperties``).
public enum KafkaSecurity: Sendable, Equatable {
    /// No encryption, no authentication (`security.protocol=plaintext`): local development only.
    case plaintext
    /// TLS, authenticated by a client certificate if ``KafkaTLS/clientIdentity`` is set (`ssl`).
    case tls(KafkaTLS)
    /// SASL authentication, over TLS when `tls` is given (`sasl_ssl`), in clear otherwise
    /// (`sasl_plaintext`: the credentials of PLAIN travel in clear, use it only on a trusted network).
    case sasl(KafkaSASL, tls: KafkaTLS?)

    /// The librdkafka properties this maps to, once ``validate()`` passed.
    public func properties() throws(KafkaError) -> [String: String] {
        try validate()
        switch self {
        case .plaintext:
            return ["security.protocol": "plaintext"]
        case .tls(let tls):
            return tls.properties.merging(["security.protocol": "ssl"]) { _, new in new }
        case .sasl(let sasl, let tls):
            var properties = sasl.properties
            properties["security.protocol"] = tls == nil ? "sasl_plaintext" : "sasl_ssl"
            if let tls { properties.merge(tls.properties) { _, new in new } }
            return properties
        }
    }

    /// Checks everything that can be checked before connecting: credentials present, PEM text
    /// that looks like PEM, files that exist and hold PEM, a password for an encrypted key.
    /// Throws ``KafkaError/Kind/invalidConfiguration`` saying what is wrong and how to fix it,
    /// never quoting a secret. (Whether a key matches its certificate, or its password opens
    /// it, is known only when the client starts: librdkafka reports it then.)
    public func validate() throws(KafkaError) {
        switch self {
        case .plaintext: return
        case .tls(let tls): try tls.validate()
        case .sasl(let sasl, let tls):
            try sasl.validate()
            try tls?.validate()
        }
    }

    /// Every librdkafka property a security configuration sets or that would contradict one:
    /// ``ConsumerSettings/withSecurity(_:)`` removes them before adding its own.
    public static let managedProperties: Set<String> = [
        "security.protocol",
        "ssl.ca.location", "ssl.ca.pem", "ssl.certificate.location", "ssl.certificate.pem",
        "ssl.key.location", "ssl.key.pem", "ssl.key.password", "ssl.keystore.location", "ssl.keystore.password",
        "ssl.endpoint.identification.algorithm", "enable.ssl.certificate.verification",
        "sasl.mechanism", "sasl.mechanisms", "sasl.username", "sasl.password",
        "enable.sasl.oauthbearer.unsecure.jwt", "sasl.oauthbearer.config", "sasl.oauthbearer.method",
        "sasl.oauthbearer.client.id", "sasl.oauthbearer.client.secret", "sasl.oauthbearer.token.endpoint.url",
        "sasl.oauthbearer.scope", "sasl.oauthbearer.extensions",
    ]
}

extension KafkaSecurity: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The configuration with every secret shown as ``SecretProperties/redacted``.
    public var description: String {
        switch self {
        case .plaintext: "plaintext"
        case .tls(let tls): "tls(\(tls))"
        case .sasl(let sasl, let tls): "sasl(\(sasl), tls: \(tls.map { "\($0)" } ?? "none"))"
        }
    }

    /// The same as ``description``: secrets are redacted here too.
    public var debugDescription: String { description }

    /// Reflection (`dump`) sees only the redacted description.
    public var customMirror: Mirror { Mirror(self, children: ["redacted": description], displayStyle: .enum) }
}

extension ConsumerSettings {
    /// With `security` (TLS, SASL) checked and mapped to librdkafka's properties, replacing
    /// every security property set before (``KafkaSecurity/managedProperties``).
    /// - Throws: ``KafkaError/Kind/invalidConfiguration`` from ``KafkaSecurity/validate()``, or
    ///   when librdkafka refuses a property (this build may lack a feature, such as OIDC).
    public func withSecurity(_ security: KafkaSecurity) throws(KafkaError) -> Self {
        var copy = self
        copy.properties = try SecurityProperties.applying(security, to: properties, client: "consumer")
        return copy
    }
}

extension ProducerSettings {
    /// With `security` (TLS, SASL) checked and mapped to librdkafka's properties, replacing
    /// every security property set before (``KafkaSecurity/managedProperties``).
    /// - Throws: ``KafkaError/Kind/invalidConfiguration`` from ``KafkaSecurity/validate()``, or
    ///   when librdkafka refuses a property (this build may lack a feature, such as OIDC).
    public func withSecurity(_ security: KafkaSecurity) throws(KafkaError) -> Self {
        var copy = self
        copy.properties = try SecurityProperties.applying(security, to: properties, client: "producer")
        return copy
    }
}
