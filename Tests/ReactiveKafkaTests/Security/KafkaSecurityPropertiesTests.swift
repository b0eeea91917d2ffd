import Foundation
import ReactiveKafka
import Testing

/// PEM-shaped text for the checks that look at armour only (no TLS handshake uses it).
enum FakePEM {
    static let certificate = "-----BEGIN CERTIFICATE-----\nMIIBfakecertificatebody\n-----END CERTIFICATE-----\n"
    static let key = "-----BEGIN PRIVATE KEY-----\nMIGHsecretkeymaterial0123\n-----END PRIVATE KEY-----\n"
    static let encryptedKey =
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIHsecretencryptedkey4567\n-----END ENCRYPTED PRIVATE KEY-----\n"

    /// A directory of its own with `files` (name → content) written into it.
    static func directory(_ files: [String: String]) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rk-security-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for (name, content) in files {
            try content.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        return directory
    }
}

/// ``KafkaSecurity`` maps each configuration to exactly the librdkafka properties it needs,
/// and ``ConsumerSettings/withSecurity(_:)`` replaces whatever security was set before.
@Suite struct KafkaSecurityPropertiesTests {
    @Test func plaintextAndDefaultTLS() throws {
        #expect(try KafkaSecurity.plaintext.properties() == ["security.protocol": "plaintext"])
        #expect(
            try KafkaSecurity.tls(KafkaTLS()).properties() == [
                "security.protocol": "ssl", "ssl.endpoint.identification.algorithm": "https",
            ])
    }

    @Test func mutualTLSWithPEMText() throws {
        let tls = KafkaTLS(
            trust: .pem(FakePEM.certificate),
            clientIdentity: .pem(certificate: FakePEM.certificate, key: FakePEM.encryptedKey, keyPassword: "key-pass"),
            verifiesHostname: false)
        #expect(
            try KafkaSecurity.tls(tls).properties() == [
                "security.protocol": "ssl",
                "ssl.ca.pem": FakePEM.certificate,
                "ssl.certificate.pem": FakePEM.certificate,
                "ssl.key.pem": FakePEM.encryptedKey,
                "ssl.key.password": "key-pass",
                "ssl.endpoint.identification.algorithm": "none",
            ])
    }

    @Test func mutualTLSWithFiles() throws {
        let directory = try FakePEM.directory([
            "ca.pem": FakePEM.certificate, "client.pem": FakePEM.certificate, "client.key": FakePEM.key,
        ])
        defer { try? FileManager.default.removeItem(at: directory) }
        let tls = KafkaTLS(
            trust: .file(directory.appendingPathComponent("ca.pem").path),
            clientIdentity: .files(
                certificate: directory.appendingPathComponent("client.pem").path,
                key: directory.appendingPathComponent("client.key").path))
        #expect(
            try KafkaSecurity.tls(tls).properties() == [
                "security.protocol": "ssl",
                "ssl.ca.location": directory.appendingPathComponent("ca.pem").path,
                "ssl.certificate.location": directory.appendingPathComponent("client.pem").path,
                "ssl.key.location": directory.appendingPathComponent("client.key").path,
                "ssl.endpoint.identification.algorithm": "https",
            ])
        // A directory of hashed CA certificates is a valid trust location too.
        #expect(
            try KafkaSecurity.tls(KafkaTLS(trust: .file(directory.path))).properties()["ssl.ca.location"]
                == directory.path)
    }

    @Test func saslMechanismsInClearAndOverTLS() throws {
        #expect(
            try KafkaSecurity.sasl(.plain(username: "alice", password: "pw"), tls: nil).properties() == [
                "security.protocol": "sasl_plaintext", "sasl.mechanism": "PLAIN", "sasl.username": "alice",
                "sasl.password": "pw",
            ])
        #expect(
            try KafkaSecurity.sasl(.scramSHA256(username: "bob", password: "pw"), tls: KafkaTLS()).properties() == [
                "security.protocol": "sasl_ssl", "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "bob",
                "sasl.password": "pw",
                "ssl.endpoint.identification.algorithm": "https",
            ])
        #expect(
            try KafkaSecurity.sasl(
                .scramSHA512(username: "carol", password: "pw"), tls: KafkaTLS(trust: .pem(FakePEM.certificate))
            ).properties() == [
                "security.protocol": "sasl_ssl", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "carol",
                "sasl.password": "pw",
                "ssl.ca.pem": FakePEM.certificate, "ssl.endpoint.identification.algorithm": "https",
            ])
    }

    @Test func oauthBearerUnsecuredJWTAndOIDC() throws {
        let unsecured = KafkaOAuthBearer.unsecuredJWT(
            principal: "admin", scopes: ["read", "write"], lifetime: .seconds(600),
            extensions: ["traceId": "abc", "pool": "p1"])
        #expect(
            try KafkaSecurity.sasl(.oauthBearer(unsecured), tls: nil).properties() == [
                "security.protocol": "sasl_plaintext", "sasl.mechanism": "OAUTHBEARER",
                "enable.sasl.oauthbearer.unsecure.jwt": "true",
                "sasl.oauthbearer.config":
                    "principal=admin scope=read,write lifeSeconds=600 extension_pool=p1 extension_traceId=abc",
            ])
        let oidc = KafkaOAuthBearer.oidc(
            clientId: "svc", clientSecret: "s3cret", tokenEndpoint: "https://login.example.com/token",
            scopes: ["kafka", "audit"], extensions: ["logicalCluster": "lkc1", "identityPoolId": "pool2"])
        #expect(
            try KafkaSecurity.sasl(.oauthBearer(oidc), tls: KafkaTLS()).properties() == [
                "security.protocol": "sasl_ssl", "sasl.mechanism": "OAUTHBEARER",
                "ssl.endpoint.identification.algorithm": "https",
                "sasl.oauthbearer.method": "oidc", "sasl.oauthbearer.client.id": "svc",
                "sasl.oauthbearer.client.secret": "s3cret",
                "sasl.oauthbearer.token.endpoint.url": "https://login.example.com/token",
                "sasl.oauthbearer.scope": "kafka audit",
                "sasl.oauthbearer.extensions": "identityPoolId=pool2,logicalCluster=lkc1",
            ])
    }

    @Test func withSecurityReplacesEarlierSecurityAndKeepsTheRest() throws {
        let consumer = try ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
            .withBootstrapServers("kafka:9093")
            .withProperty("ssl.key.location", "/old/client.key")
            .withProperty("sasl.mechanism", "GSSAPI")
            .withProperty("enable.ssl.certificate.verification", "false")
            .withSecurity(.sasl(.scramSHA512(username: "svc", password: "pw"), tls: KafkaTLS()))
        #expect(
            consumer.properties == [
                "bootstrap.servers": "kafka:9093", "security.protocol": "sasl_ssl", "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": "svc", "sasl.password": "pw", "ssl.endpoint.identification.algorithm": "https",
            ])
        try consumer.validate()
        let producer = try ProducerSettings(keySerializer: .string, valueSerializer: .string)
            .withSecurity(.tls(KafkaTLS()))
            .withSecurity(.plaintext)
        #expect(producer.properties == ["security.protocol": "plaintext"])
        try producer.validate()
    }

    /// librdkafka accepts every property the typed configurations produce (OIDC aside, which
    /// needs libcurl: see ``KafkaSecurityValidationTests``).
    @Test func librdkafkaAcceptsTheMappedProperties() throws {
        let directory = try FakePEM.directory(["ca.pem": FakePEM.certificate])
        defer { try? FileManager.default.removeItem(at: directory) }
        let securities: [KafkaSecurity] = [
            .plaintext,
            .tls(KafkaTLS(trust: .file(directory.appendingPathComponent("ca.pem").path), verifiesHostname: false)),
            .tls(
                KafkaTLS(
                    trust: .pem(FakePEM.certificate),
                    clientIdentity: .pem(certificate: FakePEM.certificate, key: FakePEM.key))),
            .sasl(.plain(username: "u", password: "p"), tls: nil),
            .sasl(.scramSHA256(username: "u", password: "p"), tls: KafkaTLS()),
            .sasl(.oauthBearer(.unsecuredJWT(principal: "admin")), tls: nil),
        ]
        for security in securities {
            try ProducerSettings(properties: ["bootstrap.servers": "127.0.0.1:9092"]).withSecurity(security).validate()
        }
    }
}
