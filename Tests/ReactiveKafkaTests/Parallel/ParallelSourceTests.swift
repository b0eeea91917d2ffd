import Foundation
import ReactiveKafkaTestKit
import StreamKit
import Synchronization
import Testing

@testable import ReactiveKafka

/// The parallel source on the embedded cluster: key order under concurrency, exact commits
/// with completed offsets carried in metadata across a restart, dead letters, bounded buffering.
@Suite(.serialized) struct ParallelSourceTests {
    typealias Settings = ConsumerSettings<String, String>

    static func settings(_ kafka: EmbeddedKafka, group: String) -> Settings {
        ConsumerEndToEndTests.settings(kafka, group: group)
    }

    static func committed(_ kafka: EmbeddedKafka, group: String, topic: String, partitions: Int32) async throws
        -> [Int32: Int64]
    {
        try await TestData.committedOffsets(
            bootstrapServers: kafka.bootstrapServers, group: group, topic: topic, partitions: partitions)
    }

    /// Runs `source` in a task counting what it emits; `stop` drains it once `condition` holds.
    final class Running<Output: Sendable>: Sendable {
        let control: ConsumerControl
        let task: Task<Int, any Error>
        private let emitted: Counter

        final class Counter: Sendable { let value = Atomic<Int>(0) }

        init(_ source: Source<ParallelSequence<Output>, ConsumerControl>) {
            control = source.materialized
            let counter = Counter()
            emitted = counter
            task = Task {
                for try await _ in source { counter.value.add(1, ordering: .relaxed) }
                return counter.value.load(ordering: .relaxed)
            }
        }

        var count: Int { emitted.value.load(ordering: .relaxed) }

        func waitFor(_ expected: Int, within limit: Duration = .seconds(30)) async throws -> Bool {
            try await StreamEndTests.eventually(within: limit) { count >= expected }
        }

        func drain() async throws -> Int { try await control.drainAndShutdown(task) }
    }

    @Test func keyOrderHoldsUnderRandomLatency() async throws {
        // 20,000 records of 1,000 keys (the 100,000 take too long for the suite; the
        // bench runs the larger shape).
        let count = 20_000
        let keys = 1_000
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("par-order", partitions: 6)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "par-order",
            records: (0..<count).map { (key: "k\($0 % keys)", value: "\($0 / keys)") })
        let running = Mutex<Set<String>>([])
        let lastSeen = Mutex<[String: Int]>([:])
        let violations = Atomic<Int>(0)
        let source = Consumer.parallelSource(
            Self.settings(kafka, group: "g-par-order"), subscription: .topics(["par-order"]),
            parallel: ParallelSettings(ordering: .key, maxConcurrency: 200)
        ) { record in
            let key = record.key ?? ""
            let sequence = Int(record.value) ?? -1
            let ok =
                running.withLock { $0.insert(key).inserted }
                && lastSeen.withLock { seen in
                    defer { seen[key] = sequence }
                    return sequence == (seen[key] ?? -1) + 1
                }
            if !ok { violations.add(1, ordering: .relaxed) }
            try await Task.sleep(for: .microseconds(Int.random(in: 0...2_000)))
            running.withLock { _ = $0.remove(key) }
        }
        let run = Running(source)
        #expect(try await run.waitFor(count, within: .seconds(120)))
        _ = try await run.drain()
        #expect(violations.load(ordering: .relaxed) == 0)
        #expect(lastSeen.withLock { $0.count } == keys)
        #expect(lastSeen.withLock { $0.values.allSatisfy { $0 == count / keys - 1 } })
        #expect(
            try await Self.committed(kafka, group: "g-par-order", topic: "par-order", partitions: 6).values.reduce(0, +)
                == Int64(count))
    }

    @Test func aRestartSkipsRecordsCompletedAboveAGapAndProcessesTheGap() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("par-gap", partitions: 1)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "par-gap",
            records: (0..<20).map { (key: "k\($0)", value: "v\($0)") }, partition: 0)
        let settings = Self.settings(kafka, group: "g-par-gap")
        let parallel = ParallelSettings(ordering: .key, maxConcurrency: 8, drainTimeout: .milliseconds(300))
        // First run: offset 5 never completes (stuck until cancelled); the others do.
        let first = Running(
            Consumer.parallelSource(settings, subscription: .topics(["par-gap"]), parallel: parallel) { record in
                if record.offset == 5 { try await Task.sleep(for: .seconds(300)) }
                return record.offset
            })
        #expect(try await first.waitFor(19))
        _ = try await first.drain()
        #expect(try await Self.committed(kafka, group: "g-par-gap", topic: "par-gap", partitions: 1) == [0: 5])

        // Second run: only the gap is processed; 6..<20 were done, read back from the metadata.
        let processed = Mutex<[Int64]>([])
        let second = Running(
            Consumer.parallelSource(settings, subscription: .topics(["par-gap"]), parallel: parallel) { record in
                processed.withLock { $0.append(record.offset) }
            })
        #expect(try await second.waitFor(1))
        #expect(
            try await StreamEndTests.eventually(within: .seconds(10)) {
                (try? TestData.committedOffsets(
                    bootstrapServers: kafka.bootstrapServers, group: "g-par-gap", topic: "par-gap", partitions: 1)) == [
                        0: 20
                    ]
            })
        _ = try await second.drain()
        #expect(processed.withLock { $0 } == [5])
    }

    @Test func aRecordThatKeepsFailingGoesToTheDeadLetterTopicWithItsError() async throws {
        struct Poison: Error, CustomStringConvertible { var description: String { "poison record v3" } }
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("par-dlq-in", partitions: 1)
        try kafka.createTopic("par-dlq", partitions: 1)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "par-dlq-in",
            records: (0..<10).map { (key: "k\($0 % 3)", value: "v\($0)") }, partition: 0)
        let attempts = Atomic<Int>(0)
        let producer = ProducerSettings(keySerializer: Serializer<String>.string, valueSerializer: .string)
            .withBootstrapServers(kafka.bootstrapServers)
        let run = Running(
            Consumer.parallelSource(
                Self.settings(kafka, group: "g-par-dlq"), subscription: .topics(["par-dlq-in"]),
                parallel: ParallelSettings(retry: ParallelRetry(maxAttempts: 3, initialBackoff: .milliseconds(10))),
                onFailure: .deadLetter(topic: "par-dlq", producer: producer)
            ) { record in
                if record.value == "v3" {
                    attempts.add(1, ordering: .relaxed)
                    throw Poison()
                }
            })
        #expect(try await run.waitFor(9))
        #expect(
            try await StreamEndTests.eventually(within: .seconds(10)) {
                (try? TestData.committedOffsets(
                    bootstrapServers: kafka.bootstrapServers, group: "g-par-dlq", topic: "par-dlq-in", partitions: 1))
                    == [0: 10]
            })
        #expect(try await run.drain() == 9)
        #expect(attempts.load(ordering: .relaxed) == 3)

        let reader = Consumer.plainSource(
            Self.settings(kafka, group: "g-par-dlq-reader"), subscription: .topics(["par-dlq"]))
        var iterator = reader.makeAsyncIterator()
        let dead = try #require(try await iterator.next())
        await reader.materialized.shutdown()
        #expect(dead.value == "v3")
        #expect(dead.key == "k0")
        #expect(dead.headers.first { $0.key == "parallel.error" }?.value?.string == "poison record v3")
        #expect(dead.headers.first { $0.key == "parallel.offset" }?.value?.string == "3")
    }

    @Test func aFailingRecordFailsTheStreamAndIsNotCommitted() async throws {
        struct Broken: Error {}
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("par-fail", partitions: 1)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "par-fail",
            records: (0..<10).map { (key: "k\($0)", value: "v\($0)") }, partition: 0)
        let source = Consumer.parallelSource(
            Self.settings(kafka, group: "g-par-fail"), subscription: .topics(["par-fail"]),
            parallel: ParallelSettings(maxConcurrency: 1, retry: ParallelRetry(maxAttempts: 1))
        ) { record in
            if record.offset == 4 { throw Broken() }
        }
        await #expect(throws: Broken.self) { for try await _ in source {} }
        await source.materialized.shutdown()
        #expect(try await Self.committed(kafka, group: "g-par-fail", topic: "par-fail", partitions: 1) == [0: 4])
    }

    @Test func oneStuckKeyHoldsAtMostItsPartitionsBufferAndOtherPartitionsGoOn() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("par-stuck", partitions: 2)
        // Partition 0: the stuck key every other record; partition 1: other keys only.
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "par-stuck",
            records: (0..<2_000).map { (key: $0 % 2 == 0 ? "stuck" : "k\($0)", value: "v\($0)") }, partition: 0)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "par-stuck",
            records: (0..<1_000).map { (key: "p1-\($0)", value: "v\($0)") }, partition: 1)
        let release = Mutex<CheckedContinuation<Void, Never>?>(nil)
        let released = Atomic<Bool>(false)
        let otherKeysOfPartition0 = Atomic<Int>(0)
        let partition1 = Atomic<Int>(0)
        let limit = 50
        let run = Running(
            Consumer.parallelSource(
                Self.settings(kafka, group: "g-par-stuck"), subscription: .topics(["par-stuck"]),
                parallel: ParallelSettings(ordering: .key, maxConcurrency: 20, maxBufferedPerPartition: limit)
            ) { record in
                if record.key == "stuck" && record.offset == 0 && !released.load(ordering: .acquiring) {
                    await withCheckedContinuation { c in release.withLock { $0 = c } }
                } else if record.partition == 0 && record.key != "stuck" {
                    otherKeysOfPartition0.add(1, ordering: .relaxed)
                } else if record.partition == 1 {
                    partition1.add(1, ordering: .relaxed)
                }
            })
        #expect(
            try await StreamEndTests.eventually(within: .seconds(30)) { partition1.load(ordering: .relaxed) == 1_000 })
        // Let partition 0's reader run into its bound.
        try await Task.sleep(for: .seconds(1))
        let whileStuck = otherKeysOfPartition0.load(ordering: .relaxed)
        // Reading stops once the partition's backlog is `limit` records and resumes only when it is a
        // quarter below that: with the stuck key's records piling up it stops for good between
        // 3/4 of `limit` and `limit` of them, and about as many others passed.
        #expect(whileStuck >= limit * 3 / 4 - 2 && whileStuck <= limit + 1, "\(whileStuck) other records passed")
        released.store(true, ordering: .releasing)
        release.withLock { $0?.resume() }
        #expect(try await run.waitFor(3_000))
        _ = try await run.drain()
        #expect(otherKeysOfPartition0.load(ordering: .relaxed) == 1_000)
    }

    @Test func invalidSettingsFailTheStreamWithATypedError() async throws {
        let kafka = try EmbeddedKafka()
        let source = Consumer.parallelSource(
            Self.settings(kafka, group: "g-par-invalid"), subscription: .topics(["none"]),
            parallel: ParallelSettings(maxConcurrency: 0)
        ) { _ in }
        await #expect(throws: KafkaError.self) { for try await _ in source {} }
        await source.materialized.shutdown()
    }
}
