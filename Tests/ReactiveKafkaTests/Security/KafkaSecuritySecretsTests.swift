import Foundation
import Testing

@testable import ReactiveKafka

/// Secrets of a security configuration (passwords, private keys and their passwords, client
/// secrets) appear in no description, reflection or error, and the properties holding them are
/// the ones settings redact and librdkafka's log lines are scrubbed of.
@Suite struct KafkaSecuritySecretsTests {
    static let password = "pa55-hunter2"
    static let keyBody = "MIGHsecretkeymaterial0123"
    static let keyPassword = "key-pa55"
    static let clientSecret = "oidc-s3cret"

    static let extensionValue = "ext-value-9"

    /// Each configuration, with a part of it that is not secret and must still be shown.
    static let configurations: [(KafkaSecurity, shown: String)] = [
        (.sasl(.plain(username: "alice", password: password), tls: nil), "PLAIN(username: alice"),
        (.sasl(.scramSHA256(username: "alice", password: password), tls: KafkaTLS()), "SCRAM-SHA-256(username: alice"),
        (
            .sasl(.scramSHA512(username: "alice", password: password), tls: KafkaTLS(trust: .pem(FakePEM.certificate))),
            "trust: pem(1 certificates)"
        ),
        (
            .tls(
                KafkaTLS(
                    clientIdentity: .pem(
                        certificate: FakePEM.certificate,
                        key: FakePEM.encryptedKey.replacingOccurrences(of: "MIHsecretencryptedkey4567", with: keyBody),
                        keyPassword: keyPassword))),
            "clientIdentity: pem(certificate, key: <redacted>, keyPassword: <redacted>)"
        ),
        (
            .sasl(.oauthBearer(.unsecuredJWT(principal: "admin", extensions: ["traceId": extensionValue])), tls: nil),
            "principal: admin"
        ),
        (
            .sasl(
                .oauthBearer(
                    .oidc(clientId: "svc", clientSecret: clientSecret, tokenEndpoint: "https://login.example.com/token")
                ), tls: KafkaTLS()),
            "clientId: svc, clientSecret: <redacted>"
        ),
    ]

    static let secrets = [password, keyBody, keyPassword, clientSecret, extensionValue]

    static func renderings(_ value: Any) -> [String] {
        var dumped = ""
        dump(value, to: &dumped)
        return [String(describing: value), String(reflecting: value), "\(value)", dumped]
    }

    @Test(arguments: configurations)
    func noDescriptionOrReflectionShowsASecret(_ security: KafkaSecurity, shown: String) {
        for printed in Self.renderings(security) {
            for secret in Self.secrets { #expect(!printed.contains(secret), "\(printed)") }
            // Not vacuous: what is not secret is still there.
            #expect(printed.contains(shown), "\(printed)")
        }
    }

    @Test(arguments: configurations)
    func settingsWithSecurityRedactEverySecret(_ security: KafkaSecurity, shown: String) throws {
        let properties = try security.properties()
        let secretValues = properties.filter { entry in Self.secrets.contains { entry.value.contains($0) } }
        #expect(!secretValues.isEmpty, "the configuration carries a secret")
        for key in secretValues.keys {
            #expect(SecretProperties.isSecret(key), "\(key) holds a secret but settings would print it")
            // The log scrubber reads these back from each client: a secret it does not know would reach stderr.
            #expect(
                SecretProperties.knownSecretNames.contains(key) || !KafkaClientPropertyNames.all.contains(key),
                "\(key) is not scrubbed from librdkafka's logs")
        }
        // OIDC is refused by a librdkafka without libcurl; its mapping is covered by properties() above.
        guard
            let settings = try? ProducerSettings(keySerializer: .string, valueSerializer: .string).withSecurity(
                security)
        else { return }
        for printed in Self.renderings(settings) {
            for secret in Self.secrets { #expect(!printed.contains(secret), "\(printed)") }
        }
    }

    @Test func validationErrorsNeverQuoteASecret() throws {
        // The key where the certificate belongs, an encrypted key without its password, a blank
        // password: each error is about a secret and must not show it.
        let keyText = FakePEM.key.replacingOccurrences(of: "MIGHsecretkeymaterial0123", with: Self.keyBody)
        let failing: [KafkaSecurity] = [
            .tls(KafkaTLS(trust: .pem(keyText))),
            .tls(KafkaTLS(clientIdentity: .pem(certificate: keyText, key: keyText, keyPassword: Self.keyPassword))),
            .tls(
                KafkaTLS(
                    clientIdentity: .pem(certificate: FakePEM.certificate, key: "\(Self.keyBody) \(Self.password)"))),
            .sasl(.plain(username: "alice", password: "\(Self.password)\0"), tls: nil),
            .sasl(
                .oauthBearer(
                    .oidc(
                        clientId: "svc", clientSecret: Self.clientSecret,
                        tokenEndpoint: "https://user:\(Self.password)@/")), tls: nil),
        ]
        for security in failing {
            let error = #expect(throws: KafkaError.self) {
                try ConsumerSettings(properties: [:]).withSecurity(security)
            }
            for secret in Self.secrets {
                #expect(error?.message.contains(secret) == false, "\(String(describing: error))")
            }
        }
    }
}
