import Dispatch
import Foundation
import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Synchronization
import Testing

/// The transactional sources on the embedded cluster (or, with `make test-external`, on a Kafka
/// cluster, where the test that injects faults is skipped): the partitioned source,
/// the offset-context pair, a revoke that drains into a committed transaction,
/// and the commit at shutdown.
@Suite(.serialized) struct TransactionalSourceTests {
    typealias Envelope = ProducerMessage<String, String, TransactionalOffset>

    static func settings(_ kafka: TestCluster, group: String) -> ConsumerSettings<String, String> {
        kafka.consumerSettings(group: group)
    }

    @Test(.enabled(if: TestClusterMode.isEmbedded, "injects faults into the embedded cluster"))
    func aPartitionedSourceReadsAPartitionAgainInItsSubStreamAfterAnAbort() async throws {
        let kafka = try TestCluster()
        let names = try await EOSNames(kafka, "tps", partitions: 3, count: 1500, outputPartitions: 3)
        let (tpsGroup, tpsId, tpsIn, tpsOut) = (names.group, names.transactionalId, names.input, names.output)
        let source = Transactional.partitionedSource(
            Self.settings(kafka, group: tpsGroup), subscription: .topics(tpsIn))
        let committed = CommittedResults()
        let injected = Mutex(false)
        let merge = DynamicMerge<Envelope>(bufferSize: 64)
        let stream = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for try await result in merge.elements.via(
                        Transactional.flow(
                            TransactionalPipelineTests.producerSettings(kafka), transactionalId: tpsId,
                            eosCommitInterval: .milliseconds(100))
                    ) {
                        committed.add(result)
                    }
                }
                for try await assigned in source {
                    let subStream = assigned.source
                    merge.add(
                        subStream.map { message -> Envelope in
                            if message.record.value == "v600",
                                !injected.withLock({
                                    let was = $0
                                    $0 = true
                                    return was
                                })
                            {
                                try kafka.requireEmbedded().failNextRequests(
                                    .produce, with: [KafkaErrorCode(rawValue: 59)]) // UNKNOWN_PRODUCER_ID: abortable
                            }
                            try await Task.sleep(for: .microseconds(300))
                            return .single(
                                ProducerRecord(topic: tpsOut, key: message.record.key, value: message.record.value),
                                passThrough: message.partitionOffset)
                        })
                }
                merge.finish()
                try await group.waitForAll()
            }
        }
        try await committed.waitFor(total: 1500)
        try await source.materialized.drainAndShutdown(stream)
        #expect(injected.withLock { $0 })
        #expect(
            committed.offsetsByPartition() == [0: Array(0..<500), 1: Array(0..<500), 2: Array(0..<500)],
            "each partition was read again in its own sub-stream: every offset committed exactly once, in order")
    }

    @Test func theOffsetContextPairWritesEveryRecordOnce() async throws {
        let kafka = try TestCluster()
        let names = try await EOSNames(kafka, "tctx", partitions: 2, count: 400, outputPartitions: 2)
        let (tctxGroup, tctxId, tctxIn, tctxOut) = (names.group, names.transactionalId, names.input, names.output)
        let seen = Counter()
        let control = Transactional.sourceWithOffsetContext(
            Self.settings(kafka, group: tctxGroup), subscription: .topics(tctxIn)
        )
        .map { pair in
            seen.add(pair.record.value)
            return pair.producing(
                .single(
                    ProducerRecord(topic: tctxOut, key: pair.record.key, value: pair.record.value.uppercased()),
                    passThrough: ()))
        }
        .to(
            Transactional.sinkWithOffsetContext(
                TransactionalPipelineTests.producerSettings(kafka), transactionalId: tctxId)
        )
        .start()
        try await seen.waitFor(count: 400)
        try await control.drainAndShutdown()
        let values = try await TopicReader.allValues(
            topic: tctxOut, partitions: 2, bootstrapServers: kafka.bootstrapServers, isolation: .readCommitted)
        #expect(values.sorted() == (0..<400).map { "V\($0)" }.sorted())
    }

    @Test func drainAndShutdownCommitsTheOpenTransaction() async throws {
        let kafka = try TestCluster()
        let names = try await EOSNames(kafka, "tshut", partitions: 2, count: 200, outputPartitions: 1)
        let (tshutGroup, tshutId, tshutIn, tshutOut) = (names.group, names.transactionalId, names.input, names.output)
        let seen = Counter()
        let committed = CommittedResults()
        // An interval far longer than the test: only shutdown commits.
        let control = Transactional.source(Self.settings(kafka, group: tshutGroup), subscription: .topics(tshutIn))
            .map { message -> Envelope in
                seen.add(message.record.value)
                return .single(
                    ProducerRecord(topic: tshutOut, value: message.record.value), passThrough: message.partitionOffset)
            }
            .via(
                Transactional.flow(
                    TransactionalPipelineTests.producerSettings(kafka), transactionalId: tshutId,
                    eosCommitInterval: .seconds(600))
            )
            .to(Sinks.forEach { committed.add($0) })
            .start()
        try await seen.waitFor(count: 200)
        #expect(committed.total == 0, "nothing is committed before the interval or shutdown")
        try await control.drainAndShutdown()
        #expect(committed.total == 200, "drainAndShutdown committed the open transaction")
        #expect(committed.offsetsByPartition() == [0: Array(0..<100), 1: Array(0..<100)])
        let values = try await TopicReader.allValues(
            topic: tshutOut, partitions: 1, bootstrapServers: kafka.bootstrapServers, isolation: .readCommitted)
        #expect(values.count == 200)
    }

    @Test func aRevokeWaitsUntilTheRecordsEmittedForItsPartitionsAreCommitted() async throws {
        let kafka = try TestCluster()
        let names = try await EOSNames(kafka, "trev", partitions: 4, count: 4000, outputPartitions: 1)
        let (trevGroup, trevId, trevIn, trevOut) = (names.group, names.transactionalId, names.input, names.output)
        let seen = Mutex<[TopicPartition: Set<Int64>]>([:])
        let committed = CommittedResults()
        let checked = Mutex<[(revoked: Set<TopicPartition>, uncommitted: Int, emitted: Int)]>([])
        let seenCount = Counter()
        let (revoked, revokedContinuation) = AsyncStream<Void>.makeStream()
        // Only the revokes the second member causes: a broker may rebalance the group once more
        // while the first member starts (kfake does), before anything was emitted.
        let secondJoined = Atomic<Bool>(false)
        // Runs after the source's own revoke handling, still before the partitions move. The
        // results of a committed transaction reach the collector a moment after the commit, so it
        // gives them up to 2 s; without the drain nothing commits them before shutdown.
        let observer = RevokeObserver { partitions in
            guard secondJoined.load(ordering: .acquiring) else { return }
            let emitted = Set(seen.withLock { s in partitions.flatMap { p in (s[p] ?? []).map { "\(p):\($0)" } } })
            func uncommitted() -> Int {
                let done = Set(
                    committed.results().map(\.passThrough.partitionOffset).filter {
                        partitions.contains($0.topicPartition)
                    }.map { "\($0.topicPartition):\($0.offset)" })
                return emitted.subtracting(done).count
            }
            let deadline = ContinuousClock.now + .seconds(2)
            while uncommitted() > 0, ContinuousClock.now < deadline { committed.arrival.wait(timeout: .now() + 0.05) }
            checked.withLock { $0.append((partitions, uncommitted(), emitted.count)) }
            revokedContinuation.yield()
        }
        let control = Transactional.source(
            Self.settings(kafka, group: trevGroup),
            subscription: .topics(trevIn).withPartitionAssignmentHandler(observer)
        )
        .map { message -> Envelope in
            seen.withLock {
                _ = $0[message.partitionOffset.partitionOffset.topicPartition, default: []].insert(
                    message.record.offset)
            }
            seenCount.add(message.record.value)
            try await Task.sleep(for: .milliseconds(1))
            return .single(
                ProducerRecord(topic: trevOut, value: message.record.value), passThrough: message.partitionOffset)
        }
        // A long interval: only the revoke (and shutdown) make it commit.
        .via(
            Transactional.flow(
                TransactionalPipelineTests.producerSettings(kafka), transactionalId: trevId,
                eosCommitInterval: .seconds(600))
        )
        .to(Sinks.forEach { committed.add($0) })
        .start()
        try await seenCount.waitFor(count: 100)
        // A second member joins: the first one's partitions are revoked.
        secondJoined.store(true, ordering: .releasing)
        let other = Consumer.plainSource(Self.settings(kafka, group: trevGroup), subscription: .topics(trevIn))
        let otherRun = Task { for try await _ in other {} }
        for await _ in revoked { break }
        otherRun.cancel()
        await other.materialized.shutdown()
        try await control.drainAndShutdown()

        let revokes = checked.withLock { $0 }
        #expect(!revokes.isEmpty)
        for revoke in revokes {
            #expect(
                revoke.emitted > 0 || revoke.revoked.isEmpty, "records had been emitted for \(revoke.revoked.sorted())")
            #expect(
                revoke.uncommitted == 0,
                "\(revoke.uncommitted) of \(revoke.emitted) records emitted for \(revoke.revoked.sorted()) were not committed before the partitions moved"
            )
        }
    }
}

/// A partition assignment handler that reports revokes.
struct RevokeObserver: PartitionAssignmentHandler {
    let onRevoked: @Sendable (Set<TopicPartition>) -> Void
    init(_ onRevoked: @escaping @Sendable (Set<TopicPartition>) -> Void) { self.onRevoked = onRevoked }
    func onRevoke(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) { onRevoked(partitions) }
}
