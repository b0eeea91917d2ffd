import Foundation
import ReactiveKafkaTestKit
import StreamKit
import Testing

@testable import ReactiveKafka

/// A transactional source's consumer engine is freed once its stream ended and was shut
/// down. The source's context (its rebalance handler, which the engine holds for life)
/// holds the engine for rewinds: while the engine held the context strongly, that cycle
/// leaked every transactional source's whole engine (LeakSanitizer found it).
@Suite(.serialized) struct TransactionalSourceLifetimeTests {
    /// A weak reference to an engine, read without keeping it alive.
    final class WeakEngine: @unchecked Sendable {
        weak var engine: ConsumerEngine?
        var isGone: Bool { engine == nil }
    }

    @Test func theEngineIsFreedAfterTheStreamEndedAndWasShutDown() async throws {
        let kafka = try TestCluster()
        let input = try await TransactionalPipelineTests.seed(kafka, "tlife-in", partitions: 2, count: 100)
        let output = try kafka.createTopic("tlife-out", partitions: 1)
        let weak = try await runAndShutDown(kafka, input: input, output: output)
        // The engine's thread lets go of it right after closing; allow it a moment.
        let deadline = ContinuousClock.now + .seconds(10)
        while !weak.isGone, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(
            weak.isGone,
            "the transactional source's consumer engine is still alive after its stream ended and shut down: a reference cycle leaks it"
        )
    }

    /// Runs source → Transactional.flow → collector until every record committed, shuts it
    /// down, and returns a weak reference to the source's engine; nothing else of the stream
    /// outlives this call.
    @inline(never)
    private func runAndShutDown(_ kafka: TestCluster, input: String, output: String) async throws -> WeakEngine {
        let weak = WeakEngine()
        let seen = Counter()
        let committed = CommittedResults()
        let control = TransactionalPipelineTests.pipeline(
            kafka, input: input, group: kafka.name("tlife-g"), transactionalId: "tlife", committed: committed
        ) { message in
            seen.add(message.record.value)
            return .single(
                ProducerRecord(topic: output, value: message.record.value), passThrough: message.partitionOffset)
        }
        try await seen.waitFor(count: 100)
        weak.engine = try control.control.subStreamEngine()
        #expect(weak.engine != nil, "the source started its engine")
        try await committed.waitFor(total: 100)
        try await control.drainAndShutdown()
        return weak
    }
}
