import Foundation
@testable import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Testing

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
        let kafka = try EmbeddedKafka()
        try TransactionalPipelineTests.seed(kafka, topic: "tlife-in", partitions: 2, count: 100)
        try kafka.createTopic("tlife-out", partitions: 1)
        let weak = try await runAndShutDown(kafka)
        // The engine's thread lets go of it right after closing; allow it a moment.
        let deadline = ContinuousClock.now + .seconds(10)
        while !weak.isGone, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(weak.isGone, "the transactional source's consumer engine is still alive after its stream ended and shut down: a reference cycle leaks it")
    }

    /// Runs source → Transactional.flow → collector until every record committed, shuts it
    /// down, and returns a weak reference to the source's engine; nothing else of the stream
    /// outlives this call.
    @inline(never)
    private func runAndShutDown(_ kafka: EmbeddedKafka) async throws -> WeakEngine {
        let weak = WeakEngine()
        let seen = Counter()
        let committed = CommittedResults()
        let control = TransactionalPipelineTests.pipeline(kafka, input: "tlife-in", group: "tlife-g", transactionalId: "tlife", committed: committed) { message in
            seen.add(message.record.value)
            return .single(ProducerRecord(topic: "tlife-out", value: message.record.value), passThrough: message.partitionOffset)
        }
        try await seen.waitFor(count: 100)
        weak.engine = try control.control.subStreamEngine()
        #expect(weak.engine != nil, "the source started its engine")
        try await committed.waitFor(total: 100)
        try await control.drainAndShutdown()
        return weak
    }
}
