import Foundation
import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Synchronization
import Testing

/// A drain racing a rebalance: the stream's last transaction, committed as upstream completes,
/// can carry the generation a cooperative rejoin has just replaced, and the coordinator refuses its
/// offsets (ILLEGAL_GENERATION; seen on a Kafka-faithful broker in
/// `ConsumerGroupRebalanceTests.gracefulMembershipChangesProcessEveryRecordOnce`). No rewind can
/// replay it any more (the source has completed), so the stage produces the transaction's messages
/// again, with the new generation, and the drain ends without an error. The refusal is injected
/// into the embedded cluster (which checks no generations).
@Suite(.serialized) struct TransactionalDrainReplayTests {
    enum Stage: String, CaseIterable, Sendable {
        case flow, sink
    }

    @Test(
        .enabled(if: TestClusterMode.isEmbedded, "injects faults into the embedded cluster"),
        arguments: Stage.allCases)
    func aLastTransactionRefusedForItsGenerationIsProducedAgainAndTheDrainSucceeds(stage: Stage) async throws {
        let kafka = try TestCluster()
        let count = 300
        let names = try await EOSNames(kafka, "eos-drain-\(stage)", partitions: 3, count: count, outputPartitions: 1)
        let seen = Atomic<Int>(0)
        let committed = CommittedResults()
        // One transaction for the whole run: it is open when the drain begins.
        let producer = kafka.producerSettings().withProperty("transaction.timeout.ms", "30000")
        let source = Transactional.source(
            kafka.consumerSettings(group: names.group).withCommitTimeout(.seconds(4)),
            subscription: .topics(names.input)
        )
        .map { message in
            seen.add(1, ordering: .relaxed)
            return ProducerMessage<String, String, TransactionalOffset>.single(
                ProducerRecord(topic: names.output, partition: 0, value: message.record.value),
                passThrough: message.partitionOffset)
        }
        let control: DrainingControl<Void> =
            switch stage {
            case .flow:
                source.via(
                    Transactional.flow(
                        producer, transactionalId: names.transactionalId, eosCommitInterval: .seconds(60))
                )
                .to(Sinks.forEach { committed.add($0) }).start()
            case .sink:
                source.to(
                    Transactional.sink(
                        producer, transactionalId: names.transactionalId, eosCommitInterval: .seconds(60))
                ).start()
            }
        #expect(try await Eventually.within(.seconds(30)) { seen.load(ordering: .relaxed) == count })
        try kafka.requireEmbedded().failNextRequests(.txnOffsetCommit, with: [.illegalGeneration])

        try await control.drainAndShutdown()

        let values = try await TopicReader.allValues(
            topic: names.output, partitions: 1, bootstrapServers: kafka.bootstrapServers, isolation: .readCommitted)
        let expected = Set((0..<count).map { "v\($0)" })
        // The mock shows aborted records to read_committed readers too: the aborted attempt, then
        // the committed one. A broker shows the committed one alone.
        #expect(values.count == 2 * count, "one aborted transaction, then its replay: \(values.count) records")
        #expect(Set(values.prefix(count)) == expected, "the aborted attempt held every record")
        #expect(Set(values.suffix(count)) == expected, "the replay produced every record once")
        if stage == .flow {
            #expect(
                committed.offsetsByPartition()
                    == Dictionary(uniqueKeysWithValues: (0..<3).map { (Int32($0), Array(Int64(0)..<100)) }),
                "each result emitted once, after the replay committed")
        }
    }

    /// The refusal is not a generation's (the group is not this member's to commit to): producing
    /// again would be refused again, so the drain fails saying nothing of it was committed.
    @Test(.enabled(if: TestClusterMode.isEmbedded, "injects faults into the embedded cluster"))
    func aLastTransactionRefusedForAnotherReasonFailsTheDrainHonestly() async throws {
        let kafka = try TestCluster()
        let count = 90
        let names = try await EOSNames(kafka, "eos-drain-refused", partitions: 3, count: count, outputPartitions: 1)
        let seen = Atomic<Int>(0)
        let control = Transactional.source(
            kafka.consumerSettings(group: names.group), subscription: .topics(names.input)
        )
        .map { message in
            seen.add(1, ordering: .relaxed)
            return ProducerMessage<String, String, TransactionalOffset>.single(
                ProducerRecord(topic: names.output, value: message.record.value), passThrough: message.partitionOffset)
        }
        .to(
            Transactional.sink(
                kafka.producerSettings().withProperty("transaction.timeout.ms", "30000"),
                transactionalId: names.transactionalId, eosCommitInterval: .seconds(60))
        )
        .start()
        #expect(try await Eventually.within(.seconds(30)) { seen.load(ordering: .relaxed) == count })
        try kafka.requireEmbedded().failNextRequests(.txnOffsetCommit, with: [.groupAuthorizationFailed])
        var failure: KafkaError?
        do {
            try await control.drainAndShutdown()
        } catch let error as KafkaError {
            failure = error
        }
        let error = try #require(failure, "the drain reported a commit that did not happen")
        #expect(error.kind == .transactionAborted, "\(error)")
        #expect(error.message.contains("nothing of it was committed"), "\(error)")
    }
}
