import CoreMetrics
import Foundation
import MetricsTestKit
import ReactiveKafkaTestKit
import StreamKit
import Synchronization
import Testing

@testable import ReactiveKafka

/// The process's metrics backend, bootstrapped once (swift-metrics allows one bootstrap per
/// process; nothing else in the tests bootstraps one).
enum TestMetricsBackend {
    static let shared: TestMetrics = {
        let metrics = TestMetrics()
        MetricsSystem.bootstrap(metrics)
        return metrics
    }()
}

/// Commits never report success that did not happen (issue 12, item 3), on the embedded
/// cluster: an offset of a partition the consumer no longer owns, or one the coordinator
/// refuses, throws a typed ``KafkaError`` naming the partitions, and nothing is committed for it.
@Suite(.serialized) struct HonestCommitTests {
    typealias Settings = ConsumerSettings<String, String>

    static func settings(_ kafka: EmbeddedKafka, group: String) -> Settings {
        ConsumerEndToEndTests.settings(kafka, group: group)
    }

    static func seeded(_ topic: String, partitions: Int32, records: Int) async throws -> EmbeddedKafka {
        try await StreamEndTests.seeded(topic, partitions: partitions, records: records)
    }

    static func committed(_ kafka: EmbeddedKafka, group: String, topic: String, partitions: Int32) async throws
        -> [Int32: Int64]
    {
        try await TestData.committedOffsets(
            bootstrapServers: kafka.bootstrapServers, group: group, topic: topic, partitions: partitions)
    }

    /// Member A read records of both partitions of a 2-partition topic and holds their
    /// offsets uncommitted; then member B joined and took one of them (`moved`).
    final class Revoked: Sendable {
        let kafka: EmbeddedKafka
        let topic: String
        let group: String
        let first: ConsumerControl
        let second: ConsumerControl
        let runs: [Task<Void, any Error>]
        /// A's offsets read before B joined, oldest first, per partition.
        let held: [TopicPartition: [CommittableOffset]]
        /// The partition A kept, and the one that moved to B.
        let owned: TopicPartition
        let moved: TopicPartition

        init(
            kafka: EmbeddedKafka, topic: String, group: String, first: ConsumerControl, second: ConsumerControl,
            runs: [Task<Void, any Error>], held: [TopicPartition: [CommittableOffset]], owned: TopicPartition,
            moved: TopicPartition
        ) {
            self.kafka = kafka
            self.topic = topic
            self.group = group
            self.first = first
            self.second = second
            self.runs = runs
            self.held = held
            self.owned = owned
            self.moved = moved
        }

        func committed() async throws -> [Int32: Int64] {
            try await HonestCommitTests.committed(kafka, group: group, topic: topic, partitions: 2)
        }

        func end() async {
            await first.shutdown()
            await second.shutdown()
            for run in runs { _ = await run.result }
        }
    }

    static func revoked(_ name: String) async throws -> Revoked {
        let topic = "hc-\(name)"
        let group = "g-hc-\(name)"
        let kafka = try await seeded(topic, partitions: 2, records: 200)
        // A revoke does not wait for A's held offsets: they stay uncommitted on purpose.
        let settings = Self.settings(kafka, group: group).withRebalanceSafeCommitTimeout(nil).withMaxBatchSize(10)
        let first = Consumer.committableSource(settings, subscription: .topics(topic))
        let seen = Locked<[TopicPartition: [CommittableOffset]]>([:])
        let firstRun = Task {
            for try await message in first {
                seen.withLock {
                    $0[message.committableOffset.partitionOffset.topicPartition, default: []].append(
                        message.committableOffset)
                }
            }
        }
        let bothSeen = try await StreamEndTests.eventually(within: .seconds(20)) {
            seen.withLock { s in s.count == 2 && s.values.allSatisfy { $0.count >= 5 } }
        }
        try #require(bothSeen, "member A read both partitions")
        let held = seen.withLock { $0.mapValues { Array($0.prefix(5)) } }

        let second = Consumer.committableSource(Self.settings(kafka, group: group), subscription: .topics(topic))
        let secondRun = Task { for try await _ in second {} }
        // Until the group settled with one partition each.
        var firstHas = Set<TopicPartition>()
        var secondHas = Set<TopicPartition>()
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            firstHas = (try? await first.materialized.withConsumer { try $0.assignment() }) ?? []
            secondHas = (try? await second.materialized.withConsumer { try $0.assignment() }) ?? []
            if firstHas.count == 1, secondHas.count == 1, firstHas != secondHas { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        try #require(
            firstHas.count == 1 && secondHas.count == 1 && firstHas != secondHas,
            "the group settled with one partition each: A \(firstHas), B \(secondHas)")
        return Revoked(
            kafka: kafka, topic: topic, group: group, first: first.materialized, second: second.materialized,
            runs: [firstRun, secondRun], held: held, owned: firstHas.first!, moved: secondHas.first!)
    }

    // MARK: CommittableOffset and CommittableOffsetBatch

    @Test func committingAnOffsetOfARevokedPartitionThrowsNotAssignedAndCommitsNothing() async throws {
        let r = try await Self.revoked("single")
        let movedOffset = try #require(r.held[r.moved]?.last)
        do {
            try await movedOffset.commit()
            Issue.record("commit() of \(r.moved), now B's, returned normally")
        } catch {
            #expect(error.kind == .notAssigned, "\(error)")
            #expect(error.partitions == [r.moved], "\(error)")
        }
        // A still commits its own partition (the refusal is about ownership, not a broken consumer).
        let ownedOffset = try #require(r.held[r.owned]?.last)
        try await ownedOffset.commit()
        let committed = try await r.committed()
        #expect(
            committed[r.moved.partition] == nil,
            "an offset was committed for \(r.moved), which A no longer owns: \(committed)")
        #expect(committed[r.owned.partition] == ownedOffset.partitionOffset.offset + 1, "\(committed)")
        await r.end()
    }

    @Test func aBatchWithARevokedPartitionCommitsTheOwnedOnesAndNamesTheRest() async throws {
        let r = try await Self.revoked("batch")
        let ownedOffset = try #require(r.held[r.owned]?.last)
        let movedOffset = try #require(r.held[r.moved]?.last)
        let batch = CommittableOffsetBatch([ownedOffset, movedOffset])
        do {
            try await batch.commit()
            Issue.record("a batch holding \(r.moved), now B's, committed normally")
        } catch {
            #expect(error.kind == .notAssigned, "\(error)")
            #expect(error.partitions == [r.moved], "only the moved partition is named: \(error)")
        }
        let committed = try await r.committed()
        #expect(committed[r.moved.partition] == nil, "\(committed)")
        #expect(
            committed[r.owned.partition] == ownedOffset.partitionOffset.offset + 1,
            "the owned partition of the batch was committed: \(committed)")
        await r.end()
    }

    // MARK: Committer

    @Test func aCommitterSkippingOffsetsOfARevokedPartitionCountsThemAndGoesOn() async throws {
        let metrics = TestMetricsBackend.shared
        let label = "reactive_kafka_committer_skipped_offsets"
        let r = try await Self.revoked("skip")
        let before = metrics.counterTotal(label: label)
        let owned = try #require(r.held[r.owned])
        let moved = try #require(r.held[r.moved]?.last)
        // The moved partition's offset first, in a batch of its own: the committer goes on after it.
        let upstream = AsyncStream<CommittableOffset> { c in
            c.yield(moved)
            for offset in owned { c.yield(offset) }
            c.finish()
        }
        let settings = CommitterSettings().withMaxBatch(1).withDelivery(.waitForAck).withNotAssignedOffsets(.skip)
        let batches = Locked<[CommittableOffsetBatch]>([])
        for try await batch in Source(upstream).via(Committer.batchFlow(settings)) {
            batches.withLock { $0.append(batch) }
        }
        let committedBatches = batches.withLock { $0 }
        #expect(metrics.counterTotal(label: label) - before == 1, "one partition's offsets skipped and counted")
        #expect(!committedBatches.contains { $0.offsets[r.moved] != nil }, "no batch reported \(r.moved) committed")
        #expect(
            committedBatches.compactMap { $0.offsets[r.owned] }.max() == owned.last!.partitionOffset.offset + 1,
            "the committer went on committing \(r.owned) after the skip")
        let committed = try await r.committed()
        #expect(committed[r.moved.partition] == nil, "\(committed)")
        #expect(committed[r.owned.partition] == owned.last!.partitionOffset.offset + 1, "\(committed)")
        await r.end()
    }

    @Test func aCommitterSetToFailOnOffsetsOfARevokedPartitionFailsWithNotAssigned() async throws {
        let r = try await Self.revoked("fail")
        let moved = try #require(r.held[r.moved]?.last)
        let owned = try #require(r.held[r.owned]?.last)
        let upstream = AsyncStream<CommittableOffset> { c in
            c.yield(owned)
            c.yield(moved)
            c.finish()
        }
        let settings = CommitterSettings().withMaxBatch(10).withDelivery(.waitForAck).withNotAssignedOffsets(.fail)
        do {
            try await Committer.sink(settings).run(upstream)
            Issue.record("the committer completed although \(r.moved) is B's")
        } catch let error as KafkaError {
            #expect(error.kind == .notAssigned, "\(error)")
            #expect(error.partitions == [r.moved], "\(error)")
        }
        #expect(try await r.committed()[r.moved.partition] == nil)
        await r.end()
    }

    // MARK: RestrictedConsumer.commitSync

    @Test func commitSyncOfAPartitionNotAssignedThrowsNotAssignedAndCommitsNothing() async throws {
        let r = try await Self.revoked("sync")
        let moved = r.moved
        let owned = r.owned
        do {
            try await r.first.withConsumer { try $0.commitSync([moved: 3]) }
            Issue.record("commitSync of \(moved), now B's, returned normally")
        } catch let error as KafkaError {
            #expect(error.kind == .notAssigned, "\(error)")
            #expect(error.partitions == [moved], "\(error)")
        }
        // A partition of a topic the consumer never subscribed to, and one mixed with an owned partition.
        let never = TopicPartition("not-subscribed", 0)
        await #expect(throws: KafkaError.self) { try await r.first.withConsumer { try $0.commitSync([never: 1]) } }
        do {
            try await r.first.withConsumer { try $0.commitSync([owned: 2, moved: 3]) }
            Issue.record("commitSync of \(owned) and \(moved) returned normally")
        } catch let error as KafkaError {
            #expect(error.kind == .notAssigned && error.partitions == [moved], "\(error)")
        }
        // Nothing of a refused commitSync was committed, not even its owned partition; an owned one alone commits.
        #expect(try await r.committed().isEmpty, "a refused commitSync committed something")
        try await r.first.withConsumer { try $0.commitSync([owned: 2]) }
        let committed = try await r.committed()
        #expect(committed == [owned.partition: 2], "\(committed)")
        await r.end()
    }

    // MARK: The coordinator refuses

    /// A consumer that read one record of a 1-partition topic and holds its offset.
    static func oneRecordRead(_ name: String, commitTimeout: Duration = .seconds(15)) async throws
        -> (
            EmbeddedKafka, Source<KafkaConsumerSequence<CommittableMessage<String, String>>, ConsumerControl>,
            CommittableOffset, Task<Void, any Error>
        )
    {
        let kafka = try await seeded("hc-\(name)", partitions: 1, records: 20)
        let source = Consumer.committableSource(
            settings(kafka, group: "g-hc-\(name)").withCommitTimeout(commitTimeout), subscription: .topics("hc-\(name)")
        )
        let first = Locked<CommittableOffset?>(nil)
        let run = Task {
            for try await message in source { first.withLock { if $0 == nil { $0 = message.committableOffset } } }
        }
        let read = try await StreamEndTests.eventually(within: .seconds(20)) { first.withLock { $0 != nil } }
        try #require(read)
        return (kafka, source, first.withLock { $0! }, run)
    }

    @Test func aCommitTheCoordinatorRefusesFailsWithTheRefusalNotATimeout() async throws {
        let (kafka, source, offset, run) = try await Self.oneRecordRead("refused")
        // GROUP_AUTHORIZATION_FAILED: not retriable.
        try kafka.failNextRequests(.offsetCommit, with: Array(repeating: .groupAuthorizationFailed, count: 50))
        let started = ContinuousClock.now
        do {
            try await offset.commit()
            Issue.record("a refused commit returned normally")
        } catch {
            #expect(error.kind == .commitFailed, "\(error)")
            #expect(error.code == KafkaErrorCode.groupAuthorizationFailed.rawValue, "\(error)")
            #expect(error.partitions == [TopicPartition("hc-refused", 0)], "the refusal names the partition: \(error)")
        }
        #expect(
            ContinuousClock.now - started < .seconds(10), "a refusal is reported at once, not at the commit timeout")
        // commitSync meets the same refusal.
        do {
            try await source.materialized.withConsumer { try $0.commitSync([TopicPartition("hc-refused", 0): 1]) }
            Issue.record("a refused commitSync returned normally")
        } catch let error as KafkaError {
            #expect(error.kind == .commitFailed, "\(error)")
        }
        try kafka.clearRequestErrors(.offsetCommit)
        #expect(try await Self.committed(kafka, group: "g-hc-refused", topic: "hc-refused", partitions: 1).isEmpty)
        await source.materialized.shutdown()
        _ = await run.result
    }

    @Test(arguments: [KafkaErrorCode.requestTimedOut, .coordinatorLoadInProgress, .rebalanceInProgress])
    func aCommitTheCoordinatorKeepsRefusingWithARetriableErrorFailsWithTheRefusalNotATimeout(code: KafkaErrorCode)
        async throws
    {
        let name = "retried-\(code.rawValue)"
        let (kafka, source, offset, run) = try await Self.oneRecordRead(name, commitTimeout: .seconds(3))
        try kafka.failNextRequests(.offsetCommit, with: Array(repeating: code, count: 100_000))
        let started = ContinuousClock.now
        do {
            try await offset.commit()
            Issue.record("a commit refused until its timeout returned normally")
        } catch {
            #expect(error.kind != .commitTimeout, "a refusal reported as a timeout: \(error)")
            #expect(error.kind == .commitFailed || error.kind == .notAssigned, "\(error)")
            #expect(error.code == code.rawValue, "the refusal's code: \(error)")
            #expect(!error.partitions.isEmpty, "\(error)")
        }
        #expect(ContinuousClock.now - started < .seconds(10), "bounded by the commit timeout")
        let committed = try await Self.committed(kafka, group: "g-hc-\(name)", topic: "hc-\(name)", partitions: 1)
        #expect(committed.isEmpty, "\(committed)")
        // Not checked after the refusals end: the last send may still be in flight (librdkafka
        // retries it itself) and land then, after its caller was told it failed. (Seen with
        // REQUEST_TIMED_OUT and COORDINATOR_LOAD_IN_PROGRESS: a failure that later succeeded,
        // never a success that did not happen.)
        try kafka.clearRequestErrors(.offsetCommit)
        await source.materialized.shutdown()
        _ = await run.result
    }

    // MARK: atMostOnceSource

    @Test func atMostOnceMembersNeverBothReadARecordWhileCommitsFailDuringARebalance() async throws {
        let topic = "hc-amo"
        let records = 600
        let kafka = try await Self.seeded(topic, partitions: 4, records: records)
        let settings = Self.settings(kafka, group: "g-hc-amo").withRebalanceSafeCommitTimeout(.seconds(2))
            .withCommitTimeout(.seconds(10))
        struct Read: Hashable {
            let partition: Int32
            let offset: Int64
        }
        let byA = Locked<[Read]>([])
        let byB = Locked<[Read]>([])
        let a = Consumer.atMostOnceSource(settings, subscription: .topics(topic))
        let aRun = Task {
            for try await record in a {
                byA.withLock { $0.append(Read(partition: record.partition, offset: record.offset)) }
                try await Task.sleep(for: .milliseconds(5))
            }
        }
        let started = try await StreamEndTests.eventually(within: .seconds(20)) { byA.withLock { $0.count >= 40 } }
        try #require(started)
        // Commits fail (retriable) while B joins: A has commits in flight when its partitions move.
        try kafka.failNextRequests(.offsetCommit, with: Array(repeating: .rebalanceInProgress, count: 30))
        let b = Consumer.atMostOnceSource(settings, subscription: .topics(topic))
        let bRun = Task {
            for try await record in b {
                byB.withLock { $0.append(Read(partition: record.partition, offset: record.offset)) }
                try await Task.sleep(for: .milliseconds(5))
            }
        }
        _ = try await StreamEndTests.eventually(within: .seconds(60)) {
            Set(byA.withLock { $0 }).union(byB.withLock { $0 }).count >= records
        }
        try kafka.clearRequestErrors(.offsetCommit)
        await a.materialized.shutdown()
        await b.materialized.shutdown()
        let aResult = await aRun.result
        let bResult = await bRun.result
        let readByA = byA.withLock { $0 }
        let readByB = byB.withLock { $0 }
        let both = Set(readByA).intersection(readByB)
        #expect(
            both.isEmpty,
            "\(both.count) records read by both members, e.g. \(both.sorted { ($0.partition, $0.offset) < ($1.partition, $1.offset) }.prefix(5))"
        )
        #expect(
            Set(readByA).count == readByA.count && Set(readByB).count == readByB.count, "a member read a record twice")
        #expect(!readByB.isEmpty, "B took partitions and read from them")
        print(
            "at-most-once with commit failures during a join: A read \(readByA.count), B read \(readByB.count), both \(both.count), missing \(records - Set(readByA).union(readByB).count); A ended \(aResult), B ended \(bResult)"
        )
    }
}
