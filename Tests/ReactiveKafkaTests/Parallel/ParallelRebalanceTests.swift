import Foundation
import ReactiveKafkaTestKit
import StreamKit
import Synchronization
import Testing

@testable import ReactiveKafka

/// A revoke commits a parallel source's progress exactly, against a Kafka broker
/// (`KAFKA_BOOTSTRAP_SERVERS=host:port make test-external`): librdkafka's mock cluster refuses
/// commits while the group rebalances, so the revoke's commit cannot land there.
@Suite(.serialized, .enabled(if: TestClusterMode.isExternal, "needs a Kafka broker: KAFKA_BOOTSTRAP_SERVERS"))
struct ParallelRebalanceTests {
    /// Every (partition, offset) processed, with how many times.
    final class Ledger: Sendable {
        let counts = Mutex<[TopicPartition: [Int64: Int]]>([:])
        func add(_ record: ConsumerRecord<String, String>) {
            counts.withLock { $0[record.topicPartition, default: [:]][record.offset, default: 0] += 1 }
        }
        var total: Int { counts.withLock { $0.values.reduce(0) { $0 + $1.count } } }
    }

    /// Holds callers until opened.
    final class Gate: Sendable {
        private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))
        func wait() async {
            await withCheckedContinuation { c in
                let open = state.withLock { s in
                    if !s.open { s.waiters.append(c) }
                    return s.open
                }
                if open { c.resume() }
            }
        }
        func open() {
            for waiter in state.withLock({ s in
                s.open = true
                defer { s.waiters = [] }
                return s.waiters
            }) { waiter.resume() }
        }
    }

    @Test(arguments: ["range", "cooperative-sticky"])
    func aRevokeCommitsTheFirstRecordNotDoneAndTheDoneOnesAboveIt(strategy: String) async throws {
        let kafka = try TestCluster()
        let perPartition: Int64 = 2_000
        let topic = try kafka.createTopic("par-revoke-\(strategy)", partitions: 2)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: topic,
            records: (0..<2 * Int(perPartition)).map { (key: "k\($0)", value: "v\($0)") }, roundRobinOver: 2)
        let group = kafka.name("g-par-revoke-\(strategy)")
        let settings = kafka.consumerSettings(group: group).withProperty("partition.assignment.strategy", strategy)
        let ledger = Ledger()
        let gate = Gate()
        // Offset 10 of each partition is stuck until B has started: A's commits stop below it and
        // what A completes above it is carried in the commit metadata.
        @Sendable func handle(_ record: ConsumerRecord<String, String>) async throws {
            if record.offset == 10 {
                await gate.wait()
            } else {
                try await Task.sleep(for: .milliseconds(10))
            }
            ledger.add(record)
        }
        let parallel = ParallelSettings(ordering: .key, maxConcurrency: 6, drainTimeout: .milliseconds(500))
        func member() -> (ConsumerControl, Task<Void, any Error>) {
            let source = Consumer.parallelSource(settings, subscription: .topics(topic), parallel: parallel) {
                try await handle($0)
            }
            return (source.materialized, Task { for try await _ in source {} })
        }
        let a = member()
        #expect(try await StreamEndTests.eventually(within: .seconds(30)) { ledger.total >= 300 })
        let b = member()
        let bStarted = ledger.total
        // B joined once records are processed by both again after the rebalance.
        #expect(try await StreamEndTests.eventually(within: .seconds(60)) { ledger.total >= bStarted + 400 })
        gate.open()
        #expect(
            try await StreamEndTests.eventually(within: .seconds(60)) {
                ledger.counts.withLock { c in c.values.reduce(0) { $0 + $1.count } } == 2 * Int(perPartition)
            })
        #expect(
            try await StreamEndTests.eventually(within: .seconds(20)) {
                (try? TestData.committedOffsets(
                    bootstrapServers: kafka.bootstrapServers, group: group, topic: topic, partitions: 2)) == [
                        0: perPartition, 1: perPartition,
                    ]
            })
        _ = try? await a.0.drainAndShutdown(a.1)
        _ = try? await b.0.drainAndShutdown(b.1)
        // Only the stuck records may run twice (the stale run finishes after its partition moved);
        // every other record ran once: the new owner skipped what A completed above the gap.
        let duplicates = ledger.counts.withLock { c in
            c.flatMap { p, offsets in
                offsets.filter { $0.value > 1 }.map { TopicPartition(p.topic, p.partition).description + "@\($0.key)" }
            }
        }
        #expect(duplicates.allSatisfy { $0.hasSuffix("@10") }, "processed twice: \(duplicates.sorted())")
    }

    /// A revoke of a partition whose queued records made no progress since the last commit tells
    /// the engine where completion stops, so the group moves on without waiting out
    /// `rebalanceSafeCommitTimeout` (60 s here) for records that will never be committed.
    @Test func aRevokeWithNoProgressSinceTheLastCommitDoesNotWaitForTheSafeCommitTimeout() async throws {
        let kafka = try TestCluster()
        let topic = try kafka.createTopic("par-stall", partitions: 2)
        for partition: Int32 in 0..<2 {
            try await TestData.produce(
                bootstrapServers: kafka.bootstrapServers, topic: topic,
                records: (0..<50).map { (key: "key-\(partition)", value: "v\($0)") }, partition: partition)
        }
        let group = kafka.name("g-par-stall")
        let settings = kafka.consumerSettings(group: group).withRebalanceSafeCommitTimeout(.seconds(60))
        let parallel = ParallelSettings(
            ordering: .key, maxConcurrency: 6, commitInterval: .milliseconds(100), drainTimeout: .milliseconds(300))
        let stuck = Gate()
        let seenByB = Ledger()
        // A is stuck at offset 10 of both partitions, with the rest of each key queued behind it.
        let sourceA = Consumer.parallelSource(settings, subscription: .topics(topic), parallel: parallel) { record in
            if record.offset == 10 { await stuck.wait() }
        }
        let runA = Task { for try await _ in sourceA {} }
        let committedTen = try await Eventually.within(.seconds(30)) {
            (try await TestData.committedOffsets(
                bootstrapServers: kafka.bootstrapServers, group: group, topic: topic, partitions: 2)) == [0: 10, 1: 10]
        }
        #expect(committedTen, "A committed up to its stuck records")
        let sourceB = Consumer.parallelSource(settings, subscription: .topics(topic), parallel: parallel) { record in
            seenByB.add(record)
        }
        let runB = Task { for try await _ in sourceB {} }
        let moved = try await Eventually.within(.seconds(15)) { seenByB.total > 0 }
        #expect(moved, "B got partitions well before the 60 s safe-commit timeout")
        stuck.open()
        _ = try? await sourceA.materialized.drainAndShutdown(runA)
        _ = try? await sourceB.materialized.drainAndShutdown(runB)
    }
}
