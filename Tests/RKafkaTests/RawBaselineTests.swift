import ReactiveKafka
import ReactiveKafkaTestKit
import Testing

@testable import rkafka

/// The raw loops must be correct, or the ratios measured against them mean nothing:
/// every message counted, every offset committed, every message forwarded.
@Suite(.serialized, .timeLimit(.minutes(2))) struct RawBaselineTests {
    let parameters = BenchParameters(messages: 5_000, size: 20, partitions: 4, stallTimeout: .seconds(20))

    func environment(_ scenario: String) throws -> (BenchEnvironment, EmbeddedKafka) {
        let kafka = try EmbeddedKafka()
        let connection = ClusterConnection(bootstrapServers: kafka.bootstrapServers, embedded: kafka)
        return (try BenchEnvironment.make(scenario: scenario, parameters: parameters, connection: connection), kafka)
    }

    @Test func produceThenConsumeSeesEveryMessageAndByte() async throws {
        let (env, kafka) = try environment("t-consume")
        defer { kafka.stop() }
        let produced = try await onDedicatedThread("t") { try RawBaselines.produce(env, topic: env.inputTopic) }
        #expect(produced.messages == 5_000)
        let consumed = try await onDedicatedThread("t") { try RawBaselines.consume(env, group: env.baselineGroup) }
        #expect(consumed.messages == 5_000)
        #expect(consumed.notes.contains("\(5_000 * 20) value bytes"))
    }

    @Test func consumeCommitCommitsEveryOffset() async throws {
        let (env, kafka) = try environment("t-commit")
        defer { kafka.stop() }
        _ = try await onDedicatedThread("t") { try RawBaselines.produce(env, topic: env.inputTopic) }
        let run = try await onDedicatedThread("t") { try RawBaselines.consumeCommit(env, group: env.baselineGroup) }
        #expect(run.messages == 5_000)
        #expect(run.notes.contains("committed offsets verified (5000)"))
    }

    @Test func pipelineForwardsEveryMessageAndCommitsTheInput() async throws {
        let (env, kafka) = try environment("t-pipeline")
        defer { kafka.stop() }
        _ = try await onDedicatedThread("t") { try RawBaselines.produce(env, topic: env.inputTopic) }
        let run = try await onDedicatedThread("t") {
            try RawBaselines.pipeline(env, group: env.baselineGroup, outputTopic: env.baselineOutputTopic)
        }
        #expect(run.messages == 5_000)
        #expect(run.notes.contains("committed offsets verified (5000)"))
        // Read the output back with the raw consumer: all 5,000 arrived.
        let output = BenchEnvironment(
            parameters: parameters, connection: env.connection, inputTopic: env.baselineOutputTopic,
            baselineOutputTopic: "unused", connectorOutputTopic: "unused", baselineGroup: "check",
            connectorGroup: "unused"
        )
        let check = try await onDedicatedThread("t") { try RawBaselines.consume(output, group: "check") }
        #expect(check.messages == 5_000)
    }
}
