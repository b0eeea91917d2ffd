import Foundation
import ReactiveKafkaTestKit
import StreamKit
import Synchronization
import Testing

@testable import ReactiveKafka

/// A stream's end is its consumer's end: however a stream ends, its consumer
/// leaves the group promptly and its threads end; nothing queued waits forever.
@Suite(.serialized) struct StreamEndTests {
    typealias Settings = ConsumerSettings<String, String>

    static func settings(_ kafka: EmbeddedKafka, group: String) -> Settings {
        ConsumerEndToEndTests.settings(kafka, group: group)
    }

    static func seeded(_ topic: String, partitions: Int32, records: Int) async throws -> EmbeddedKafka {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic(topic, partitions: Int(partitions))
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: topic,
            records: (0..<records).map { (key: nil as String?, value: "v\($0)") }, roundRobinOver: partitions)
        return kafka
    }

    /// The process's thread count (Linux: /proc/self/task).
    static func threadCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? -1
    }

    /// Waits (bounded) until `condition` holds; false if it never did.
    static func eventually(within limit: Duration, _ condition: () -> Bool) async throws -> Bool {
        try await Eventually.within(limit, condition)
    }

    /// The ways a stream can end without `shutdown()`.
    enum Ending: String, CaseIterable, Sendable {
        case breakOutOfTheLoop, takeN, cancelTheTask, dropTheIterator
    }

    static func run(
        _ ending: Ending, _ source: Source<KafkaConsumerSequence<CommittableMessage<String, String>>, ConsumerControl>
    ) async throws {
        switch ending {
        case .breakOutOfTheLoop:
            for try await _ in source { break }
        case .takeN:
            for try await _ in source.take(5) {}
        case .cancelTheTask:
            let started = Counter()
            let task = Task {
                for try await message in source { started.add(message.record.value) }
            }
            try await started.waitFor(count: 1)
            task.cancel()
            _ = await task.result
        case .dropTheIterator:
            var iterator: KafkaConsumerSequence<CommittableMessage<String, String>>.Iterator? =
                source.makeAsyncIterator()
            _ = try await iterator!.next()
            iterator = nil
        }
    }

    @Test(arguments: Ending.allCases)
    func aStreamThatEndsLeavesItsGroupAndASecondMemberTakesEveryPartition(ending: Ending) async throws {
        let kafka = try await Self.seeded("end-\(ending.rawValue)", partitions: 4, records: 400)
        let settings = Self.settings(kafka, group: "g-end-\(ending.rawValue)")
        let first = Consumer.committableSource(settings, subscription: .topics("end-\(ending.rawValue)"))
        let second = Consumer.committableSource(settings, subscription: .topics("end-\(ending.rawValue)"))
        let secondRecords = Counter()
        let secondRun = Task { for try await message in second { secondRecords.add(message.record.value) } }
        try await Self.run(ending, first)
        // The first member left the group with its stream: the second gets all 4 partitions within seconds
        // (the session timeout is far longer than this), and reads them all.
        let control = second.materialized
        // The first consumer closed with its stream, by leaving its group (LeaveGroup sent and
        // librdkafka's close completed), not by its session expiring.
        let firstClosed = try await Self.eventually(within: .seconds(8)) { first.materialized.isShutdown }
        #expect(firstClosed, "the first consumer is still open after its stream ended (\(ending))")
        #expect(first.materialized.leftGroupCleanly, "the first consumer did not leave its group (\(ending))")
        // The mock coordinator completes the rebalance that follows at its own pace (it waits up to
        // a session timeout for members): the second member ends up with every partition.
        var assigned = Set<TopicPartition>()
        let deadline = ContinuousClock.now + .seconds(30)
        while assigned.count < 4, ContinuousClock.now < deadline {
            assigned = (try? await control.withConsumer { try $0.assignment() }) ?? []
            if assigned.count < 4 { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(
            assigned.count == 4,
            "the second member has \(assigned.count) of 4 partitions after the first stream ended (\(ending))")
        await control.shutdown()
        _ = await secondRun.result
    }

    /// Runs `source.take(300)` into a stage holding each record 500 ms, then a `Committer`: take(300)
    /// ends the source at once (mapAsync pulls all 300 ahead), while every offset is still in the
    /// slow stage, so no committer has seen one yet when the stream ends.
    static func takeAheadOfASlowStageAndACommitter(
        _ source: Source<KafkaConsumerSequence<CommittableMessage<String, String>>, ConsumerControl>
    ) async throws {
        try await source.take(300)
            .mapAsync(parallelism: 300) { message in
                try await Task.sleep(for: .milliseconds(500))
                return message.committableOffset
            }
            .run(into: Committer.sink(CommitterSettings().withMaxBatch(50)))
    }

    @Test func aStreamEndedByTakeStaysUntilTheOffsetsStillOnTheirWayAreCommitted() async throws {
        let kafka = try await Self.seeded("take-commit", partitions: 2, records: 1_000)
        let source = Consumer.committableSource(
            Self.settings(kafka, group: "g-take-commit"), subscription: .topics("take-commit"))
        try await Self.takeAheadOfASlowStageAndACommitter(source)
        let committed = try await TestData.committedOffsets(
            bootstrapServers: kafka.bootstrapServers, group: "g-take-commit", topic: "take-commit", partitions: 2)
        #expect(
            committed.values.reduce(0) { $0 + max(0, $1) } == 300,
            "every offset emitted before the stream ended is committed: \(committed)")
        let closed = try await Self.eventually(within: .seconds(10)) { source.materialized.isShutdown }
        #expect(closed, "the consumer closes once the offsets are committed")
        #expect(source.materialized.leftGroupCleanly)
    }

    @Test func anEndedStreamWhoseOffsetsAreDroppedUncommittedClosesAtOnce() async throws {
        let kafka = try await Self.seeded("take-drop", partitions: 2, records: 200)
        let source = Consumer.committableSource(
            Self.settings(kafka, group: "g-take-drop"), subscription: .topics("take-drop"))
        var kept: [CommittableOffset] = []
        for try await message in source.take(10) { kept.append(message.committableOffset) }
        let heldOpen = try await Self.eventually(within: .seconds(2)) { source.materialized.isShutdown }
        #expect(!heldOpen, "offsets still held downstream keep the consumer for their commit")
        kept.removeAll()
        let closed = try await Self.eventually(within: .seconds(5)) { source.materialized.isShutdown }
        #expect(closed, "once the last offset is dropped uncommitted, nothing holds the consumer")
        #expect(source.materialized.leftGroupCleanly)
    }

    @Test func streamsThatEndWithoutShutdownLeaveNoThreadsBehind() async throws {
        let kafka = try await Self.seeded("threads", partitions: 2, records: 200)
        // One stream first, so that threads started once per process (the cooperative pool) are counted in the baseline.
        try await Self.run(
            .breakOutOfTheLoop,
            Consumer.committableSource(Self.settings(kafka, group: "g-threads-0"), subscription: .topics("threads")))
        let before = Self.threadCount()
        var controls: [ConsumerControl] = []
        for i in 1...5 {
            let source = Consumer.committableSource(
                Self.settings(kafka, group: "g-threads-\(i)"), subscription: .topics("threads"))
            try await Self.run(Ending.allCases[i % Ending.allCases.count], source)
            controls.append(source.materialized)
        }
        let ended = try await Self.eventually(within: .seconds(10)) { controls.allSatisfy(\.isShutdown) }
        #expect(ended, "every consumer closed with its stream")
        // Each consumer ran ~5 threads (its own and librdkafka's); closing ends them, destroying the client joins them.
        let settled = try await Self.eventually(within: .seconds(10)) { Self.threadCount() <= before + 2 }
        #expect(settled, "threads before: \(before), after five streams ended: \(Self.threadCount())")
    }

    @Test func eachRestartOfARestartSourceLeavesTheGroupBeforeTheNextJoins() async throws {
        let kafka = try await Self.seeded("restart", partitions: 2, records: 200)
        let settings = Self.settings(kafka, group: "g-restart")
        let controls = Mutex<[ConsumerControl]>([])
        let restarts = Atomic<Int>(0)
        let restarting = RestartSource.onFailuresWithBackoff(
            RestartSettings(
                minBackoff: .milliseconds(10), maxBackoff: .milliseconds(50), randomFactor: 0, maxRestarts: 3)
        ) {
            let source = Consumer.committableSource(settings, subscription: .topics("restart"))
            controls.withLock { $0.append(source.materialized) }
            // Each run fails after its first record, as a processing error would.
            return source.map { _ -> String in
                restarts.add(1, ordering: .relaxed)
                throw KafkaError(.illegalState, "processing failed")
            }
        }
        await #expect(throws: (any Error).self) { for try await _ in restarting {} }
        let all = controls.withLock { $0 }
        #expect(all.count == 4, "the first run and three restarts")
        let closed = try await Self.eventually(within: .seconds(10)) { all.allSatisfy(\.isShutdown) }
        #expect(
            closed,
            "a member leaked per restart: \(all.filter { !$0.isShutdown }.count) of \(all.count) consumers still open")
    }

    @Test func withConsumerQueuedAgainstShutdownAlwaysReturns() async throws {
        let kafka = try await Self.seeded("race", partitions: 1, records: 50)
        for i in 0..<20 {
            let source = Consumer.plainSource(Self.settings(kafka, group: "g-race-\(i)"), subscription: .topics("race"))
            var iterator = source.makeAsyncIterator()
            _ = try await iterator.next()
            let control = source.materialized
            // Race a command against the close; each must return or throw, never hang.
            async let command: Result<Set<TopicPartition>, any Error> = {
                () async -> Result<Set<TopicPartition>, any Error> in
                do { return .success(try await control.withConsumer { try $0.assignment() }) } catch {
                    return .failure(error)
                }
            }()
            await control.shutdown()
            let outcome = await command
            if case .failure(let error) = outcome {
                #expect(
                    (error as? KafkaError)?.kind == .shutDown,
                    "a refused command says the consumer shut down, got \(error)")
            }
            _ = iterator
        }
    }

    @Test func rebalanceEventsAskedForAfterCloseAreFinished() async throws {
        let kafka = try await Self.seeded("events", partitions: 1, records: 10)
        let source = Consumer.plainSource(Self.settings(kafka, group: "g-events"), subscription: .topics("events"))
        for try await _ in source { break }
        await source.materialized.shutdown()
        var count = 0
        for await _ in source.materialized.rebalanceEvents() { count += 1 }
        #expect(count == 0)
    }

    @Test func thePartitionedOuterIteratorThrowsCancellationError() async throws {
        let kafka = try await Self.seeded("pcancel", partitions: 2, records: 10)
        let source = Consumer.plainPartitionedSource(
            Self.settings(kafka, group: "g-pcancel"), subscription: .topics("pcancel"))
        let gotOne = Counter()
        let task = Task {
            // Take the sub-streams, then wait for more partitions that never come.
            for try await assigned in source {
                let partition = assigned.partition
                gotOne.add(partition.description)
            }
        }
        try await gotOne.waitFor(count: 2)
        task.cancel()
        let result = await task.result
        #expect(throws: CancellationError.self) { try result.get() }
        let closed = try await Self.eventually(within: .seconds(10)) { source.materialized.isShutdown }
        #expect(closed, "the cancelled stream's consumer closed")
    }

    @Test func aPlainSourceWithAGroupCommitsOnlyWhatItEmitted() async throws {
        let kafka = try await Self.seeded("plain-ac", partitions: 4, records: 10_000)
        let settings = Self.settings(kafka, group: "g-plain-ac").withMaxBatchSize(100)
        let source = Consumer.plainSource(settings, subscription: .topics("plain-ac"))
        var emitted = 0
        for try await _ in source.take(1_000) { emitted += 1 }
        #expect(emitted == 1_000)
        let closed = try await Self.eventually(within: .seconds(10)) { source.materialized.isShutdown }
        #expect(closed)
        let committed = try await TestData.committedOffsets(
            bootstrapServers: kafka.bootstrapServers, group: "g-plain-ac", topic: "plain-ac", partitions: 4)
        let total = Int(committed.values.reduce(0) { $0 + max(0, $1) })
        // Whole batches emitted were stored (the one in hand when take ended was not): never past the 1,000.
        #expect(total <= 1_000, "auto-commit ran ahead of the stream: \(total) committed after 1,000 emitted")
        #expect(total >= 1_000 - 100, "the emitted batches were committed: \(total)")
        // A new member of the group reads the rest, and nothing the stream did not emit is skipped.
        let next = Consumer.plainSource(settings, subscription: .topics("plain-ac"))
        var reread = 0
        for try await _ in next.take(10_000 - total) { reread += 1 }
        #expect(reread == 10_000 - total)
        // Its consumer closes too (before the cluster goes with this test: a consumer still
        // closing when the process exits is what LeakSanitizer reported as leaked).
        let nextClosed = try await Self.eventually(within: .seconds(10)) { next.materialized.isShutdown }
        #expect(nextClosed)
    }
}
