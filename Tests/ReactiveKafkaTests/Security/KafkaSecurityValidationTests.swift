import CRdKafka
import Foundation
import ReactiveKafka
import Testing

/// Bad security settings fail up front, in ``ConsumerSettings/withSecurity(_:)`` and in the
/// settings' `validate()` for properties set by name, with a typed error saying what is wrong.
@Suite struct KafkaSecurityValidationTests {
    static func error(_ security: KafkaSecurity, sourceLocation: SourceLocation = #_sourceLocation) -> KafkaError? {
        let error = #expect(throws: KafkaError.self, sourceLocation: sourceLocation) {
            try ConsumerSettings(properties: [:]).withSecurity(security)
        }
        #expect(error?.kind == .invalidConfiguration, sourceLocation: sourceLocation)
        return error
    }

    @Test func missingCredentials() {
        #expect(
            Self.error(.sasl(.plain(username: "", password: "pw"), tls: nil))?.message
                == "SASL PLAIN: the SASL username is empty")
        #expect(
            Self.error(.sasl(.scramSHA512(username: "svc", password: "  "), tls: KafkaTLS()))?.message
                == "SASL SCRAM-SHA-512: the SASL password is empty")
        #expect(
            Self.error(.sasl(.scramSHA256(username: "a\0b", password: "pw"), tls: nil))?.message.contains(
                "contains a NUL character") == true)
        #expect(
            Self.error(.sasl(.oauthBearer(.unsecuredJWT(principal: "")), tls: nil))?.message.contains(
                "the principal is empty") == true)
        #expect(
            Self.error(
                .sasl(.oauthBearer(.oidc(clientId: "id", clientSecret: "", tokenEndpoint: "https://x/t")), tls: nil))?
                .message.contains("the client secret is empty") == true)
    }

    @Test func textThatIsNotPEM() {
        #expect(
            Self.error(.tls(KafkaTLS(trust: .pem("not a certificate"))))?.message
                == "the trusted CA certificates (trust: .pem) is not a PEM certificate: expected -----BEGIN CERTIFICATE----- … -----END CERTIFICATE-----"
        )
        #expect(
            Self.error(.tls(KafkaTLS(trust: .pem("/etc/ssl/ca.pem"))))?.message.contains(
                "looks like a file path: name files with .file(…)") == true)
        let keyAsCertificate = Self.error(
            .tls(KafkaTLS(clientIdentity: .pem(certificate: FakePEM.key, key: FakePEM.key))))
        #expect(keyAsCertificate?.message.contains("holds a private key where certificates belong") == true)
        let certificateAsKey = Self.error(
            .tls(KafkaTLS(clientIdentity: .pem(certificate: FakePEM.certificate, key: FakePEM.certificate))))
        #expect(certificateAsKey?.message.contains("is not a PEM private key (it holds a certificate") == true)
    }

    @Test func encryptedKeysNeedTheirPassword() {
        let noPassword = Self.error(
            .tls(KafkaTLS(clientIdentity: .pem(certificate: FakePEM.certificate, key: FakePEM.encryptedKey))))
        #expect(noPassword?.message == "the client key (clientIdentity: .pem) is encrypted: pass its keyPassword")
        let emptyPassword = Self.error(
            .tls(KafkaTLS(clientIdentity: .pem(certificate: FakePEM.certificate, key: FakePEM.key, keyPassword: ""))))
        #expect(emptyPassword?.message.contains("keyPassword is empty; pass nil for an unencrypted key") == true)
    }

    @Test func filesThatAreMissingOrHoldNoPEMAreNamed() throws {
        let directory = try FakePEM.directory([
            "ca.pem": FakePEM.certificate, "client.pem": FakePEM.certificate, "junk.key": "nothing here",
        ])
        defer { try? FileManager.default.removeItem(at: directory) }
        let missing = directory.appendingPathComponent("absent.pem").path
        #expect(
            Self.error(.tls(KafkaTLS(trust: .file(missing))))?.message
                == "the trusted CA certificates file \(missing) does not exist (trust: .file)")
        let certificate = directory.appendingPathComponent("client.pem").path
        #expect(
            Self.error(.tls(KafkaTLS(clientIdentity: .files(certificate: certificate, key: missing))))?.message
                == "the client key file \(missing) does not exist")
        #expect(
            Self.error(.tls(KafkaTLS(clientIdentity: .files(certificate: certificate, key: directory.path))))?.message
                == "the client key file \(directory.path) is a directory: name the file")
        let junk = directory.appendingPathComponent("junk.key").path
        #expect(
            Self.error(.tls(KafkaTLS(clientIdentity: .files(certificate: certificate, key: junk))))?.message.hasPrefix(
                "the client key file \(junk) is not a PEM private key") == true)
    }

    @Test func oauthBearerSettingsThatLibrdkafkaWouldMisread() {
        #expect(
            Self.error(.sasl(.oauthBearer(.unsecuredJWT(principal: "admin user")), tls: nil))?.message
                == "OAUTHBEARER: the principal must not contain spaces")
        #expect(
            Self.error(.sasl(.oauthBearer(.unsecuredJWT(principal: "a", scopes: ["x,y"])), tls: nil))?.message
                == "OAUTHBEARER: the scope \"x,y\" must not contain ','")
        #expect(
            Self.error(.sasl(.oauthBearer(.unsecuredJWT(principal: "a", lifetime: .zero)), tls: nil))?.message.contains(
                "at least 1 second") == true)
        #expect(
            Self.error(.sasl(.oauthBearer(.unsecuredJWT(principal: "a", extensions: ["trace-id": "1"])), tls: nil))?
                .message
                == "OAUTHBEARER: the extension name \"trace-id\" must be letters only (RFC 7628)")
        #expect(
            Self.error(.sasl(.oauthBearer(.unsecuredJWT(principal: "a", extensions: ["auth": "1"])), tls: nil))?.message
                .contains("reserved") == true)
        #expect(
            Self.error(
                .sasl(
                    .oauthBearer(.oidc(clientId: "id", clientSecret: "s", tokenEndpoint: "login.example.com/token")),
                    tls: KafkaTLS()))?
                .message
                == "OAUTHBEARER (OIDC): the token endpoint is not an http(s) URL with a host, e.g. https://login.example.com/oauth2/token"
        )
        #expect(
            Self.error(
                .sasl(
                    .oauthBearer(
                        .oidc(clientId: "id", clientSecret: "s", tokenEndpoint: "https://x/t", extensions: ["a": "1,2"])
                    ), tls: nil))?
                .message == "OAUTHBEARER: the value of extension a must not contain ',' or '=' or line breaks")
    }

    /// OIDC needs a librdkafka built with libcurl: without it, withSecurity says so; with it, the properties are accepted.
    @Test func oidcIsRefusedClearlyByABuildWithoutIt() throws {
        let oidc = KafkaSecurity.sasl(
            .oauthBearer(
                .oidc(clientId: "svc", clientSecret: "s3cret-value", tokenEndpoint: "https://login.example.com/token")),
            tls: KafkaTLS())
        guard !Self.builtinFeatures.contains("oidc") else {
            _ = try ConsumerSettings(properties: [:]).withSecurity(oidc)
            return
        }
        let error = Self.error(oidc)
        #expect(
            error?.message.contains("OAuth/OIDC depends on libcurl and OpenSSL which were not available at build time")
                == true, "\(String(describing: error))")
        #expect(error?.message.contains("s3cret-value") == false)
    }

    @Test func propertiesSetByNameAreCheckedByValidate() throws {
        let directory = try FakePEM.directory(["ca.pem": FakePEM.certificate])
        defer { try? FileManager.default.removeItem(at: directory) }
        let ca = directory.appendingPathComponent("ca.pem").path
        func validationError(_ properties: [String: String]) -> KafkaError? {
            let consumer = #expect(throws: KafkaError.self) { try ConsumerSettings(properties: properties).validate() }
            let producer = #expect(throws: KafkaError.self) { try ProducerSettings(properties: properties).validate() }
            #expect(consumer?.message == producer?.message)
            return consumer
        }
        #expect(
            validationError(["ssl.ca.location": ca, "ssl.ca.pem": FakePEM.certificate])?.message
                == "both ssl.ca.location and ssl.ca.pem are set: set one (a file, or the same PEM inline), not both")
        #expect(
            validationError(["ssl.certificate.pem": FakePEM.certificate])?.message.contains("without its private key")
                == true)
        #expect(validationError(["ssl.key.pem": FakePEM.key])?.message.contains("without its certificate") == true)
        #expect(
            validationError(["ssl.ca.location": "/nowhere/ca.pem"])?.message.contains("/nowhere/ca.pem does not exist")
                == true)
        #expect(
            validationError(["ssl.key.pem": FakePEM.encryptedKey, "ssl.certificate.pem": FakePEM.certificate])?.message
                == "ssl.key.pem is encrypted: pass its keyPassword")
        try ConsumerSettings(properties: ["ssl.ca.location": ca, "security.protocol": "ssl"]).validate()
        try ConsumerSettings(properties: ["ssl.ca.location": "probe"]).validate()
    }

    /// librdkafka's `builtin.features` (`ssl`, `sasl_scram`, `oidc`, …).
    static let builtinFeatures: [String] = {
        guard let conf = rd_kafka_conf_new() else { return [] }
        defer { rd_kafka_conf_destroy(conf) }
        var buffer = [CChar](repeating: 0, count: 1024)
        var size = buffer.count
        guard rd_kafka_conf_get(conf, "builtin.features", &buffer, &size) == RD_KAFKA_CONF_OK else { return [] }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self).split(
            separator: ","
        ).map(String.init)
    }()
}
