import Foundation
import ReactiveKafka
import Testing

/// The README's Security example, verbatim, so it cannot rot: the settings it builds map to
/// the properties the README promises, and printing them shows no secret.
@Suite struct SecurityReadmeExampleTests {
    @Test func theReadmeShowsThisCodeVerbatim() throws {
        try ReadmeBlocks.expectInReadme(markers: ["README security"])
    }

    @Test func theReadmeSecurityExampleBuildsTheSettingsItDescribes() throws {
        let directory = try FakePEM.directory(["ca.pem": FakePEM.certificate])
        defer { try? FileManager.default.removeItem(at: directory) }
        let bootstrapServers = "kafka-1.example.com:9093"
        let caFile = directory.appendingPathComponent("ca.pem").path
        let password = "billing-password"
        let (clientCertificatePEM, clientKeyPEM, keyPassword) = (
            FakePEM.certificate, FakePEM.encryptedKey, "key-password"
        )

        // README security: begin
        // SASL/SCRAM over TLS, trusting the cluster's CA:
        let consumerSettings = try ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
            .withBootstrapServers(bootstrapServers)
            .withGroupId("billing")
            .withSecurity(
                .sasl(.scramSHA512(username: "billing", password: password), tls: KafkaTLS(trust: .file(caFile))))

        // Mutual TLS, with the client's certificate and encrypted key as PEM text (from a secret store, say):
        let producerSettings = try ProducerSettings(keySerializer: .string, valueSerializer: .string)
            .withBootstrapServers(bootstrapServers)
            .withSecurity(
                .tls(
                    KafkaTLS(
                        trust: .file(caFile),
                        clientIdentity: .pem(
                            certificate: clientCertificatePEM, key: clientKeyPEM, keyPassword: keyPassword))))

        print(producerSettings) // … "ssl.key.password": "<redacted>", "ssl.key.pem": "<redacted>" …
        // README security: end

        #expect(consumerSettings.properties["security.protocol"] == "sasl_ssl")
        #expect(consumerSettings.properties["sasl.mechanism"] == "SCRAM-SHA-512")
        #expect(consumerSettings.properties["ssl.ca.location"] == caFile)
        #expect(producerSettings.properties["security.protocol"] == "ssl")
        #expect(producerSettings.properties["ssl.key.pem"] == clientKeyPEM)
        let printed = "\(consumerSettings) \(producerSettings)"
        #expect(
            !printed.contains(password) && !printed.contains("secretencryptedkey") && !printed.contains(keyPassword))
        #expect(printed.contains("\"ssl.key.pem\": \"<redacted>\""))
    }
}
