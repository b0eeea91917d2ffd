import Foundation
import Logging
import ReactiveKafka
import StreamKit
import Synchronization
import Testing

/// TLS settings made by ``KafkaSecurity`` reach librdkafka's TLS stack and do what they say,
/// against a TLS listener (`openssl s_server`, which speaks TLS but not Kafka): a trusted broker
/// completes the handshake, a client certificate is presented (PEM text with an encrypted key,
/// or files), an untrusted CA or a certificate for another host fails it unless host-name
/// checks are off. Past the handshake nothing answers, so these tests say nothing of Kafka
/// over TLS, nor of SASL (see the README's Security section).
@Suite(.serialized, .enabled(if: OpenSSLTool.isAvailable, "needs the openssl command line tool and stdbuf"))
final class TLSHandshakeTests {
    /// Made for each test (a few hundred milliseconds) and removed after it.
    let certificates: TestCertificates

    init() async throws { certificates = try await TestCertificates.make() }

    deinit { try? FileManager.default.removeItem(at: certificates.directory) }

    /// A consumer of `security` connecting to `server`, its librdkafka errors captured in `logs`.
    static func connect(to server: OpenSSLServer, with security: KafkaSecurity, logs: LogLines) throws
        -> ConsumerControl
    {
        let settings = try ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
            .withBootstrapServers("localhost:\(server.port)")
            .withProperty("broker.address.family", "v4")
            .withBrokerUnreachableTimeout(nil)
            .withCloseTimeout(.seconds(2))
            .withSecurity(security)
        let source = Consumer.plainSource(
            settings, subscription: .assignment(TopicPartition("tls", 0)),
            logger: Logger(label: "tls-test") { _ in LogLinesHandler(lines: logs) })
        _ = source.to(Sinks.ignore()).start()
        return source.materialized
    }

    /// Runs `body` with a listener and a consumer connected to it, then ends both.
    func withHandshake(
        server certificate: String, clientCA: String? = nil, security: KafkaSecurity,
        _ body: (OpenSSLServer, LogLines) async throws -> Void
    ) async throws {
        let server = try await OpenSSLServer.start(
            certificate: certificates.path("\(certificate).pem"), key: certificates.path("\(certificate).key"),
            clientCA: clientCA.map { certificates.path($0) })
        let logs = LogLines()
        do {
            let control = try Self.connect(to: server, with: security, logs: logs)
            do {
                try await body(server, logs)
            } catch {
                await control.shutdown()
                throw error
            }
            await control.shutdown()
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    @Test func aBrokerSignedByTheTrustedCACompletesTheHandshake() async throws {
        try await withHandshake(
            server: "localhost", security: .tls(KafkaTLS(trust: .pem(try certificates.text("ca.pem"))))
        ) { server, logs in
            _ = try await server.waitFor("CIPHER is ")
            #expect(!logs.contains("SSL handshake failed"), "\(logs.all)")
        }
    }

    @Test func mutualTLSPresentsTheClientCertificateFromPEMWithAnEncryptedKey() async throws {
        let tls = KafkaTLS(
            trust: .pem(try certificates.text("ca.pem")),
            clientIdentity: .pem(
                certificate: try certificates.text("client.pem"), key: try certificates.text("client-encrypted.key"),
                keyPassword: TestCertificates.keyPassword))
        try await withHandshake(server: "localhost", clientCA: "ca.pem", security: .tls(tls)) { server, _ in
            #expect(try await server.waitFor("subject=") == "subject=CN = rk-test-client")
            _ = try await server.waitFor("CIPHER is ")
        }
    }

    @Test func mutualTLSPresentsTheClientCertificateFromFiles() async throws {
        let tls = KafkaTLS(
            trust: .file(certificates.path("ca.pem")),
            clientIdentity: .files(certificate: certificates.path("client.pem"), key: certificates.path("client.key")))
        try await withHandshake(server: "localhost", clientCA: "ca.pem", security: .tls(tls)) { server, _ in
            #expect(try await server.waitFor("subject=") == "subject=CN = rk-test-client")
            _ = try await server.waitFor("CIPHER is ")
        }
    }

    @Test func aBrokerSignedByAnotherCAIsRefused() async throws {
        try await withHandshake(
            server: "localhost", security: .tls(KafkaTLS(trust: .pem(try certificates.text("other-ca.pem"))))
        ) { server, logs in
            let failure = try await logs.waitFor("SSL handshake failed")
            #expect(failure.contains("certificate verify failed"), "\(failure)")
            #expect(!server.printed.contains("CIPHER is "))
        }
    }

    @Test func aCertificateForAnotherHostIsRefusedUnlessHostNamesAreNotChecked() async throws {
        let ca = try certificates.text("ca.pem")
        try await withHandshake(server: "elsewhere", security: .tls(KafkaTLS(trust: .pem(ca)))) { server, logs in
            let failure = try await logs.waitFor("SSL handshake failed")
            #expect(failure.contains("certificate verify failed"), "\(failure)")
            #expect(!server.printed.contains("CIPHER is "))
        }
        try await withHandshake(server: "elsewhere", security: .tls(KafkaTLS(trust: .pem(ca), verifiesHostname: false)))
        { server, logs in
            _ = try await server.waitFor("CIPHER is ")
            #expect(!logs.contains("SSL handshake failed"), "\(logs.all)")
        }
    }

    @Test func aListenerAskingForAClientCertificateRefusesAClientWithout() async throws {
        try await withHandshake(
            server: "localhost", clientCA: "ca.pem",
            security: .tls(KafkaTLS(trust: .pem(try certificates.text("ca.pem"))))
        ) { server, logs in
            // TLS 1.3: the client learns of it from the listener's alert, after its own side of the handshake.
            let failure = try await logs.waitFor("alert certificate required")
            #expect(failure.contains("kafka error"), "\(failure)")
            #expect(!server.printed.contains("subject=CN = rk-test-client"))
        }
    }

    /// A producer's settings go through the same mapping: its client presents its certificate too.
    @Test func aProducerPresentsItsClientCertificate() async throws {
        let server = try await OpenSSLServer.start(
            certificate: certificates.path("localhost.pem"), key: certificates.path("localhost.key"),
            clientCA: certificates.path("ca.pem"))
        do {
            let settings = try ProducerSettings(keySerializer: .string, valueSerializer: .string)
                .withBootstrapServers("localhost:\(server.port)")
                .withProperty("broker.address.family", "v4")
                .withSecurity(
                    .tls(
                        KafkaTLS(
                            trust: .file(certificates.path("ca.pem")),
                            clientIdentity: .files(
                                certificate: certificates.path("client.pem"), key: certificates.path("client.key")))))
            let producer = try KafkaProducer(settings)
            let subject = try await server.waitFor("subject=")
            await producer.close(timeout: .seconds(1))
            #expect(subject == "subject=CN = rk-test-client")
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }
}

/// Log lines (message and metadata) a consumer wrote, and waiters for one holding some text.
final class LogLines: Sendable {
    private let collector = OutputCollector()

    func append(_ line: String) { collector.append(Data((line + "\n").utf8)) }
    var all: String { collector.text }
    func contains(_ text: String) -> Bool { collector.text.contains(text) }

    func waitFor(_ text: String, seconds: Double = 10) async throws -> String {
        let collector = collector
        return try await withTimeout(seconds: seconds) { try await collector.line(containing: text) }
    }
}

/// Writes every log line, with its metadata, to ``LogLines``.
struct LogLinesHandler: LogHandler {
    let lines: LogLines
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let fields = (event.metadata ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(
            separator: " ")
        lines.append("\(event.level) \(event.message) \(fields)".replacingOccurrences(of: "\n", with: " "))
    }
}
