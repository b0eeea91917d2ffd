import Foundation
import Logging
import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Synchronization
import Testing

/// A cluster listening with TLS and/or SASL, named by the environment:
/// `KAFKA_SECURE_BOOTSTRAP_SERVERS` (required), `KAFKA_SECURE_CA_FILE` (TLS, trusting that CA),
/// `KAFKA_SECURE_CLIENT_CERT_FILE` and `KAFKA_SECURE_CLIENT_KEY_FILE` (mutual TLS),
/// `KAFKA_SECURE_SASL` as `MECHANISM:user:password` (SASL).
struct SecureCluster: Sendable {
    let bootstrapServers: String
    let tls: KafkaTLS?
    let sasl: KafkaSASL?

    var security: KafkaSecurity {
        if let sasl { return .sasl(sasl, tls: tls) }
        return tls.map { .tls($0) } ?? .plaintext
    }

    static let configured: SecureCluster? = {
        let environment = ProcessInfo.processInfo.environment
        guard let servers = environment["KAFKA_SECURE_BOOTSTRAP_SERVERS"], !servers.isEmpty else { return nil }
        let tls = environment["KAFKA_SECURE_CA_FILE"].map { ca in
            KafkaTLS(
                trust: .file(ca),
                clientIdentity: environment["KAFKA_SECURE_CLIENT_CERT_FILE"].flatMap { certificate in
                    environment["KAFKA_SECURE_CLIENT_KEY_FILE"].map { .files(certificate: certificate, key: $0) }
                })
        }
        let sasl = environment["KAFKA_SECURE_SASL"].flatMap { text -> KafkaSASL? in
            let parts = text.split(separator: ":", maxSplits: 2).map(String.init)
            guard parts.count == 3 else { return nil }
            switch parts[0] {
            case "PLAIN": return .plain(username: parts[1], password: parts[2])
            case "SCRAM-SHA-256": return .scramSHA256(username: parts[1], password: parts[2])
            case "SCRAM-SHA-512": return .scramSHA512(username: parts[1], password: parts[2])
            default: return nil
            }
        }
        return SecureCluster(bootstrapServers: servers, tls: tls, sasl: sasl)
    }()

    func consumer(group: String, security: KafkaSecurity? = nil) throws -> ConsumerSettings<String, String> {
        try ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
            .withBootstrapServers(bootstrapServers)
            .withGroupId(group)
            .withProperty("auto.offset.reset", "earliest")
            .withProperties(TestClusterMode.externalGroupProperties)
            .withSecurity(security ?? self.security)
    }
}

/// Kafka over TLS and SASL end to end, against a cluster that listens that way
/// (`KAFKA_SECURE_BOOTSTRAP_SERVERS=… make test`; see the README's Security section for one
/// run locally): records produced and consumed, offsets committed, and the failures a wrong
/// password or an untrusted broker cause.
@Suite(
    .serialized,
    .enabled(if: SecureCluster.configured != nil, "needs a TLS/SASL listener: KAFKA_SECURE_BOOTSTRAP_SERVERS"))
struct SecureClusterTests {
    @Test func recordsTravelOverTheSecuredListenerAndOffsetsAreCommitted() async throws {
        let cluster = try #require(SecureCluster.configured)
        let topic = "secure-\(TestClusterMode.runID)"
        try KafkaAdmin.createTopic(
            topic, partitions: 2, bootstrapServers: cluster.bootstrapServers,
            clientProperties: try cluster.security.properties())
        let producer = try ProducerSettings(keySerializer: .string, valueSerializer: .string)
            .withBootstrapServers(cluster.bootstrapServers)
            .withSecurity(cluster.security)
        let values = (0..<200).map { "secure-\($0)" }
        try await withTimeout(seconds: 60) {
            try await Source(finiteStream(values)).map { ProducerRecord(topic: topic, key: $0, value: $0) }.run(
                into: Producer.plainSink(producer))
        }

        let group = "secure-g-\(TestClusterMode.runID)"
        let received = Mutex<[String]>([])
        let control = Consumer.committableSource(try cluster.consumer(group: group), subscription: .topics(topic))
            .take(values.count)
            .map { message in
                received.withLock { $0.append(message.record.value) }
                return message.committableOffset
            }
            .to(Committer.sink(CommitterSettings()))
            .start()
        try await withTimeout(seconds: 60) { try await control.streamCompletion.value }
        #expect(Set(received.withLock { $0 }) == Set(values))

        let metadata = try MetadataClient(try cluster.consumer(group: group))
        let committed = try await metadata.committedOffsets([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        metadata.close()
        #expect(committed.values.reduce(0, +) == Int64(values.count))
    }

    @Test(.enabled(if: SecureCluster.configured?.sasl != nil, "needs KAFKA_SECURE_SASL"))
    func aWrongPasswordIsRefusedByTheBroker() async throws {
        let cluster = try #require(SecureCluster.configured)
        let wrong: KafkaSASL
        switch try #require(cluster.sasl) {
        case .plain(let user, let password): wrong = .plain(username: user, password: password + "-wrong")
        case .scramSHA256(let user, let password): wrong = .scramSHA256(username: user, password: password + "-wrong")
        case .scramSHA512(let user, let password): wrong = .scramSHA512(username: user, password: password + "-wrong")
        case .oauthBearer: return
        }
        let logs = LogLines()
        let settings = try cluster.consumer(
            group: "secure-wrong-\(TestClusterMode.runID)", security: .sasl(wrong, tls: cluster.tls)
        )
        .withCloseTimeout(.seconds(2))
        let source = Consumer.plainSource(
            settings, subscription: .topics("secure-none"),
            logger: Logger(label: "secure") { _ in LogLinesHandler(lines: logs) })
        let running = source.to(Sinks.ignore()).start()
        // Kafka answers SASL_AUTHENTICATION_FAILED; kfake closes the connection instead. librdkafka
        // reports either as a SASL authentication error, and retries.
        let failure = try await logs.waitFor("SASL authentication error", seconds: 30)
        await source.materialized.shutdown()
        _ = await running.streamCompletion.result
        #expect(failure.contains("kafka error"), "\(failure)")
        #expect(!logs.all.contains("-wrong"), "a password reached the log: \(logs.all)")
    }

    @Test(.enabled(if: SecureCluster.configured?.tls != nil, "needs KAFKA_SECURE_CA_FILE"))
    func aBrokerNotSignedByATrustedCAIsRefused() async throws {
        let cluster = try #require(SecureCluster.configured)
        var tls = try #require(cluster.tls)
        tls.trust = .system
        let logs = LogLines()
        let security: KafkaSecurity = cluster.sasl.map { .sasl($0, tls: tls) } ?? .tls(tls)
        let settings = try cluster.consumer(group: "secure-untrusted-\(TestClusterMode.runID)", security: security)
            .withCloseTimeout(.seconds(2))
        let source = Consumer.plainSource(
            settings, subscription: .topics("secure-none"),
            logger: Logger(label: "secure") { _ in LogLinesHandler(lines: logs) })
        let running = source.to(Sinks.ignore()).start()
        let failure = try await logs.waitFor("SSL handshake failed", seconds: 30)
        await source.materialized.shutdown()
        _ = await running.streamCompletion.result
        #expect(failure.contains("certificate verify failed"), "\(failure)")
    }
}
