import Foundation
import ReactiveKafka
import ReactiveKafkaTestKit
import Synchronization
import Testing

/// Transactional offset sends never report success that did not happen (issue 12, item 3):
/// offsets of partitions this member no longer owns are refused with a typed error naming
/// them, the transaction is aborted, and the group's committed offsets stay where they were.
///
/// On an external broker the refusal is real (the group rebalanced, so the member's
/// generation is stale: ILLEGAL_GENERATION); librdkafka's mock does not check generations,
/// so there the coordinator's answer is injected.
@Suite(.serialized) struct TransactionalOffsetRefusalTests {
    static func producerSettings(_ kafka: TestCluster) -> ProducerSettings<String, String> {
        kafka.producerSettings().withProperty("transaction.timeout.ms", "10000")
    }

    static func assignment(_ control: ConsumerControl) async -> Set<TopicPartition> {
        (try? await control.withConsumer { try $0.assignment() }) ?? []
    }

    /// Waits (bounded) until `condition` holds.
    static func eventually(within limit: Duration, _ condition: () async -> Bool) async throws -> Bool {
        try await Eventually.within(limit, condition)
    }

    @Test func offsetsOfPartitionsThisMemberNoLongerOwnsAreRefusedNamingThem() async throws {
        let kafka = try TestCluster()
        let topic = try kafka.createTopic("txo-stale", partitions: 2)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: topic,
            records: (0..<20).map { (key: "k\($0)" as String?, value: "v\($0)") }, roundRobinOver: 2)
        let group = kafka.name("txo-stale-g")
        let both: Set = [TopicPartition(topic, 0), TopicPartition(topic, 1)]

        // Member A owns both partitions (a committable source: nothing is committed unless asked).
        // Its offsets are never committed: its revoke does not wait for them.
        let settings = kafka.consumerSettings(group: group).withRebalanceSafeCommitTimeout(nil)
        let first = Consumer.committableSource(settings, subscription: .topics(topic))
        let firstRun = Task { for try await _ in first {} }
        try #require(
            try await Self.eventually(within: .seconds(30)) { await Self.assignment(first.materialized) == both },
            "member A was assigned both partitions")
        let stale = try await first.materialized.withConsumer { try $0.groupMetadata() }

        // Member B joins: the group rebalances into a new generation, one partition each.
        let second = Consumer.committableSource(settings, subscription: .topics(topic))
        let secondRun = Task { for try await _ in second {} }
        let settled = try await Self.eventually(within: .seconds(60)) {
            let (a, b) = (await Self.assignment(first.materialized), await Self.assignment(second.materialized))
            return a.count == 1 && b.count == 1 && a != b
        }
        try #require(settled, "the group rebalanced to one partition each")
        let moved = try #require(await Self.assignment(second.materialized).first)

        if let embedded = kafka.embedded {
            try embedded.failNextRequests(.txnOffsetCommit, with: Array(repeating: .illegalGeneration, count: 20))
        }
        let producer = try TransactionalProducer(
            Self.producerSettings(kafka), transactionalId: kafka.name("txo-stale-tx"))
        let output = try kafka.createTopic("txo-stale-out", partitions: 1)
        let offsets: [TopicPartition: Int64] = [TopicPartition(topic, 0): 7, TopicPartition(topic, 1): 7]
        var refusal: KafkaError?
        do {
            try await producer.transaction { t in
                try await t.send(ProducerRecord(topic: output, value: "never visible"))
                try await t.sendOffsets(offsets, groupMetadata: stale)
            }
            Issue.record("a transaction with offsets of a stale generation committed")
        } catch let error as KafkaError {
            refusal = error
        }
        if let embedded = kafka.embedded { try embedded.clearRequestErrors(.txnOffsetCommit) }
        await producer.close()

        let error = try #require(refusal)
        #expect(error.kind != .commitTimeout, "a refusal reported as a timeout: \(error)")
        #expect(error.kind == .transactionAborted, "\(error)")
        #expect(error.code == KafkaErrorCode.illegalGeneration.rawValue, "\(error)")
        #expect(error.partitions == Set(offsets.keys), "the error names the refused partitions: \(error)")
        #expect(error.partitions.contains(moved), "including the one that moved to B: \(error)")
        #expect(error.message.contains("a rebalance replaced"), "\(error)")
        // Nothing of the transaction is visible (the mock does not filter aborted records from
        // read_committed readers, so only a broker can show it), and the group's offsets did not move.
        if kafka.isExternal {
            let visible = try await TopicReader.allValues(
                topic: output, partitions: 1, bootstrapServers: kafka.bootstrapServers, isolation: .readCommitted)
            #expect(visible.isEmpty, "\(visible)")
        }
        let committed = try await TestData.committedOffsets(
            bootstrapServers: kafka.bootstrapServers, group: group, topic: topic, partitions: 2)
        #expect(committed.isEmpty, "the refused offsets were not committed: \(committed)")

        await first.materialized.shutdown()
        await second.materialized.shutdown()
        _ = await firstRun.result
        _ = await secondRun.result
    }
}
