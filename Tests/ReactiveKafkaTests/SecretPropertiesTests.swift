import CRdKafka
import Configuration
import Foundation
import Synchronization
import Testing

@testable import ReactiveKafka

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Issue 12, item 5: a secret's value never appears in settings' descriptions or
/// reflection, in configuration errors, or in librdkafka's log lines.
@Suite(.serialized) struct SecretPropertiesTests {
    static let secret = "hunter2"

    /// One property of each kind of secret: passwords, client secrets, tokens, JAAS and
    /// OAUTHBEARER configurations, PEM keys, keystores, a credential of a plugin, a
    /// different case, and misspelt passwords (one with `pass` in it, one without).
    static let secretKeys = [
        "sasl.password", "ssl.key.password", "ssl.keystore.password", "ssl.keystore.location",
        "sasl.oauthbearer.client.secret", "sasl.oauthbearer.token.endpoint.url", "my.plugin.token",
        "sasl.jaas.config", "sasl.oauthbearer.config", "ssl.key.pem", "aws.credentials", "SASL.PASSWORD",
        "sasl.pasword", "sasl.pssword",
    ]

    @Test(arguments: secretKeys)
    func settingsNeverPrintASecret(_ key: String) {
        let consumer = ConsumerSettings<String, String>(keyDeserializer: .string, valueDeserializer: .string)
            .withClientId("visible-client").withProperty(key, Self.secret)
        let producer = ProducerSettings<String, String>(keySerializer: .string, valueSerializer: .string)
            .withClientId("visible-client").withProperty(key, Self.secret)
        for (name, printed) in Self.everyRendering(consumer) + Self.everyRendering(producer) {
            #expect(!printed.contains(Self.secret), "\(name) shows \(key)'s value: \(printed)")
            // Not vacuous: the secret's key and the other properties are still shown.
            #expect(printed.contains(key), "\(name) lost the key \(key): \(printed)")
            #expect(printed.contains("visible-client"), "\(name) lost a property that is not secret: \(printed)")
            #expect(printed.contains(SecretProperties.redacted), "\(name): \(printed)")
        }
    }

    /// Clients keep what they need to scrub librdkafka's errors; reflecting them (`dump`)
    /// must not show it.
    @Test func clientsNeverShowASecretWhenReflected() async throws {
        let properties = ["sasl.password": Self.secret, "client.id": "visible-client"]
        let producer = try KafkaProducer(ProducerSettings(properties: properties))
        let metadata = try MetadataClient(ConsumerSettings(properties: properties))
        var dumped = ""
        dump(producer, to: &dumped)
        dump(metadata, to: &dumped)
        await producer.close()
        metadata.close()
        #expect(!dumped.contains(Self.secret), "\(dumped)")
    }

    @Test func everySecretKindIsSecretAndOrdinaryPropertiesAreNot() {
        for key in Self.secretKeys { #expect(SecretProperties.isSecret(key), "\(key)") }
        for key in [
            "bootstrap.servers", "group.id", "client.id", "sasl.username", "sasl.mechanisms", "security.protocol",
            "ssl.ca.location", "acks",
        ] {
            #expect(!SecretProperties.isSecret(key), "\(key)")
        }
        #expect(ConsumerSettings().withProperty("acks", "all").description.contains("\"acks\": \"all\""))
    }

    /// A misspelt secret key (librdkafka: unknown property), a secret librdkafka does not
    /// support (in this build, or ever: JAAS), and a secret that librdkafka checks only
    /// when the client is created (a keystore it cannot open, whose path it quotes).
    @Test func invalidSecretPropertiesAreNamedButNeverQuoted() throws {
        var errors: [(String, KafkaError)] = []
        func rejection(_ what: String, _ body: () throws(KafkaError) -> Void) {
            do {
                try body()
                Issue.record("\(what) was accepted")
            } catch {
                errors.append((what, error))
            }
        }
        rejection("misspelt sasl.pasword") { () throws(KafkaError) in
            try ConsumerSettings().withProperty("sasl.pasword", Self.secret).validate()
        }
        rejection("JAAS, never supported by librdkafka") { () throws(KafkaError) in
            try ProducerSettings().withProperty(
                "sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required password=\"\(Self.secret)\";"
            ).validate()
        }
        if !Self.librdkafkaSupportsOIDC {
            rejection("sasl.oauthbearer.client.secret, not in this build") { () throws(KafkaError) in
                try ConsumerSettings().withProperty("sasl.oauthbearer.client.secret", Self.secret).validate()
            }
        }
        let keystore = [
            "security.protocol": "ssl", "ssl.keystore.location": "/nonexistent/\(Self.secret).p12",
            "ssl.keystore.password": Self.secret,
        ]
        rejection("unreadable keystore (producer)") { () throws(KafkaError) in
            _ = try KafkaProducer(ProducerSettings(properties: keystore))
        }
        rejection("unreadable keystore (metadata client)") { () throws(KafkaError) in
            _ = try MetadataClient(ConsumerSettings(properties: keystore))
        }

        for (what, error) in errors {
            #expect(error.kind == .invalidConfiguration, "\(what): \(error)")
            #expect(!error.message.contains(Self.secret), "\(what): \(error.message)")
            #expect(!"\(error)".contains(Self.secret), "\(what): \(error)")
        }
        // The errors still say which property was refused and why.
        #expect(errors.first?.1.message.contains("\"sasl.pasword\"") == true)
        #expect(errors.first?.1.message.contains("No such configuration property") == true)
        #expect(errors.contains { $0.1.message.contains("ssl.keystore.location") })
    }

    /// librdkafka's own log lines quote some values: here the path of a keystore it cannot
    /// open ("calling fopen(/nonexistent/hunter2.p12, rb)"). Captured from stderr.
    @Test func librdkafkaLogLinesNeverShowASecret() throws {
        let keystore = ProducerSettings(properties: [
            "security.protocol": "ssl", "ssl.keystore.location": "/nonexistent/\(Self.secret).p12",
            "ssl.keystore.password": "x",
        ])
        let logged = try Self.capturingStandardError {
            _ = try? KafkaProducer(keystore)
        }
        #expect(logged.contains("|SSL|"), "librdkafka logged nothing about the keystore: \(logged)")
        #expect(logged.contains(SecretProperties.redacted), "\(logged)")
        #expect(!logged.contains(Self.secret), "\(logged)")
    }

    /// Settings read with swift-configuration report each key they read to the reader's access
    /// reporter: a secret, misspelt ones included, is read as a secret and reported redacted.
    @Test func configurationAccessReportsNeverShowASecret() throws {
        final class Recorder: AccessReporter {
            let lines = Mutex<[String]>([])
            func report(_ event: AccessEvent) { lines.withLock { $0.append(event.description) } }
        }
        let recorder = Recorder()
        let config = ConfigReader(
            providers: [
                InMemoryProvider(values: [
                    "consumer.kafka-clients.sasl.password": "hunter2",
                    "consumer.kafka-clients.ssl.key.pem": "hunter2",
                    "consumer.kafka-clients.sasl.pasword": "hunter2",
                    "consumer.kafka-clients-keys": "sasl.pasword",
                    "consumer.kafka-clients.client.id": "visible-client",
                ])
            ],
            accessReporter: recorder)
        // The misspelt key is read (and reported), then refused by librdkafka's validation.
        #expect(throws: KafkaError.self) { try ConsumerSettings(config: config.scoped(to: "consumer")) }
        let lines = recorder.lines.withLock { $0 }
        #expect(lines.contains { $0.contains("visible-client") }, "\(lines)")
        for key in ["sasl.password", "ssl.key.pem", "sasl.pasword"] {
            #expect(lines.contains { $0.contains(key) }, "\(key) was not reported: \(lines)")
        }
        #expect(!lines.contains { $0.contains(Self.secret) }, "\(lines.filter { $0.contains(Self.secret) })")
    }

    @Test func scrubbingRemovesEveryPartOfASecretValue() {
        // librdkafka quotes the rest of a malformed sasl.oauthbearer.config from the bad word on.
        let reason = "Unrecognized sasl.oauthbearer.config beginning at: hunter2=1"
        let scrubbed = SecretProperties.scrub(
            reason, secretsOf: ["sasl.oauthbearer.config": "principal=me hunter2=1", "client.id": "me"])
        #expect(!scrubbed.contains(Self.secret), "\(scrubbed)")
        #expect(scrubbed.hasPrefix("Unrecognized sasl.oauthbearer.config beginning at: "))
    }

    // MARK: Helpers

    /// Every way a value is turned into text: description, debugDescription, interpolation,
    /// `String(reflecting:)`, `dump`, and the values of its `Mirror` (recursively).
    static func everyRendering<T>(_ value: T) -> [(String, String)] {
        var dumped = ""
        dump(value, to: &dumped)
        var mirrored = ""
        func walk(_ mirror: Mirror) {
            for child in mirror.children {
                mirrored += "\(child.label ?? "_")=\(child.value)\n"
                walk(Mirror(reflecting: child.value))
            }
        }
        walk(Mirror(reflecting: value))
        return [
            ("description", String(describing: value)),
            ("interpolation", "\(value)"),
            ("debugDescription", String(reflecting: value)),
            ("dump", dumped),
            ("Mirror", mirrored),
        ]
    }

    static var librdkafkaSupportsOIDC: Bool {
        let conf = rd_kafka_conf_new()!
        defer { rd_kafka_conf_destroy(conf) }
        var size = 512
        var features = [CChar](repeating: 0, count: size)
        guard rd_kafka_conf_get(conf, "builtin.features", &features, &size) == RD_KAFKA_CONF_OK else { return false }
        // OIDC needs libcurl: librdkafka lists it as "http" or "oidc" among its features.
        let list = String(cString: features).split(separator: ",")
        return list.contains("oidc") || list.contains("http")
    }

    /// Runs `body` with file descriptor 2 pointing at a temporary file, and returns what was written.
    static func capturingStandardError(_ body: () throws -> Void) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("stderr-\(UUID().uuidString)").path
        let file = open(path, O_CREAT | O_RDWR | O_TRUNC, 0o600)
        try #require(file >= 0)
        defer {
            close(file)
            unlink(path)
        }
        let saved = dup(2)
        try #require(saved >= 0)
        dup2(file, 2)
        defer {
            dup2(saved, 2)
            close(saved)
        }
        try body()
        return try String(contentsOfFile: path, encoding: .utf8)
    }
}
