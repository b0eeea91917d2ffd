import Dispatch
import Foundation
import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Synchronization
import Testing

/// The exactly-once pipeline on the embedded cluster (or, with `make test-external`, on a Kafka
/// cluster, where the tests that inject faults are skipped), librdkafka for real:
/// Transactional.source → map → Transactional.flow (results only after their
/// transaction committed) → a collector. Faults are injected with the
/// cluster's fault injection. The mock cluster does not store transactional
/// offsets nor hide aborted records (see MockClusterTransactionLimitsTests), so
/// "committed exactly once" is checked on what the flow reports committed and
/// on what a read_committed reader sees when no transaction was aborted.
@Suite(.serialized) struct TransactionalPipelineTests {
    typealias Result = ProducerResult<String, String, TransactionalOffset>

    static func producerSettings(_ kafka: TestCluster) -> ProducerSettings<String, String> {
        kafka.producerSettings().withProperty("transaction.timeout.ms", "10000")
    }

    /// Runs source → map(`envelope`) → Transactional.flow → `committed`.
    static func pipeline(
        _ kafka: TestCluster, input: String, group: String, transactionalId: String,
        interval: Duration = .milliseconds(100),
        producer: ProducerSettings<String, String>? = nil, committed: CommittedResults,
        envelope:
            @escaping @Sendable (TransactionalMessage<String, String>) async throws -> ProducerMessage<
                String, String, TransactionalOffset
            >
    ) -> DrainingControl<Void> {
        Transactional.source(kafka.consumerSettings(group: group), subscription: .topics(input))
            .map(envelope)
            .via(
                Transactional.flow(
                    producer ?? producerSettings(kafka), transactionalId: transactionalId, eosCommitInterval: interval)
            )
            .to(Sinks.forEach { committed.add($0) })
            .start()
    }

    /// Creates a topic named after `base` holding `count` records `v0`, `v1`, … round-robin; returns its name.
    static func seed(_ kafka: TestCluster, _ base: String, partitions: Int32, count: Int) async throws -> String {
        let topic = try kafka.createTopic(base, partitions: Int(partitions))
        let records = (0..<count).map { (key: "k\($0)", value: "v\($0)") }
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: topic, records: records, roundRobinOver: partitions)
        return topic
    }

    @Test func everyRecordIsProducedAndCommittedOnceInTransactionsAtTheInterval() async throws {
        let kafka = try TestCluster()
        let eos1Id = kafka.name("eos-1")
        let eosGroup = kafka.name("eos-g")
        let eosIn = try await Self.seed(kafka, "eos-in", partitions: 4, count: 400)
        let eosOut = try kafka.createTopic("eos-out", partitions: 1)
        let committed = CommittedResults()
        let control = Self.pipeline(kafka, input: eosIn, group: eosGroup, transactionalId: eos1Id, committed: committed)
        { message in
            // About 1 ms a message: the 400 records span several commit intervals.
            try await Task.sleep(for: .milliseconds(1))
            return .single(
                ProducerRecord(
                    topic: eosOut, partition: 0, key: message.record.key, value: "out-" + message.record.value),
                passThrough: message.partitionOffset)
        }
        try await committed.waitFor(total: 400)
        try await control.drainAndShutdown()

        #expect(
            committed.offsetsByPartition()
                == Dictionary(uniqueKeysWithValues: (0..<4).map { (Int32($0), Array(Int64(0)..<100)) }),
            "each input offset committed once, in partition order")
        let values = try await TopicReader.allValues(
            topic: eosOut, partitions: 1, bootstrapServers: kafka.bootstrapServers, isolation: .readCommitted)
        #expect(values.count == 400)
        #expect(Set(values) == Set((0..<400).map { "out-v\($0)" }))
        // A transaction's results are released together when it commits: bursts, one per transaction.
        let transactions = committed.bursts(gap: .milliseconds(40))
        #expect(
            transactions >= 3,
            "0.4 s or more of work at a 100 ms interval commits several transactions, not \(transactions)")
    }

    @Test func singleMultiAndPassThroughMessagesAllCommitTheirOffsets() async throws {
        let kafka = try TestCluster()
        let names = try await EOSNames(kafka, "eos-kinds", partitions: 2, count: 300, outputPartitions: 2)
        let (eosKindsGroup, eosKindsId, eosKindsIn, eosKindsOut) = (
            names.group, names.transactionalId, names.input, names.output
        )
        let committed = CommittedResults()
        let control = Self.pipeline(
            kafka, input: eosKindsIn, group: eosKindsGroup, transactionalId: eosKindsId, committed: committed
        ) { message in
            let n = Int(message.record.value.dropFirst())!
            let record = { (suffix: String) in
                ProducerRecord<String, String>(
                    topic: eosKindsOut, key: message.record.key, value: message.record.value + suffix)
            }
            switch n % 3 {
            case 0: return .single(record(""), passThrough: message.partitionOffset)
            case 1: return .multi([record("-a"), record("-b")], passThrough: message.partitionOffset)
            default: return .passThrough(message.partitionOffset)
            }
        }
        try await committed.waitFor(total: 300)
        try await control.drainAndShutdown()

        #expect(committed.offsetsByPartition() == [0: Array(0..<150), 1: Array(0..<150)])
        let kinds = committed.results().map { result -> Int in
            switch result {
            case .single: return 0
            case .multi(let parts, _): return parts.count == 2 && parts.allSatisfy { $0.metadata.offset >= 0 } ? 1 : -1
            case .passThrough: return 2
            }
        }
        #expect(kinds.filter { $0 == -1 }.isEmpty, "every record of a multi message has its metadata")
        let values = try await TopicReader.allValues(
            topic: eosKindsOut, partitions: 2, bootstrapServers: kafka.bootstrapServers, isolation: .readCommitted)
        let expected = (0..<300).flatMap { n -> [String] in
            switch n % 3 {
            case 0: return ["v\(n)"]
            case 1: return ["v\(n)-a", "v\(n)-b"]
            default: return []
            }
        }
        #expect(values.sorted() == expected.sorted())
    }

    /// librdkafka's queue holds 4 messages, so most records are refused at first, single ones
    /// and records in the middle of a multi message alike: the stage waits for space and goes
    /// on with the refused record and the rest of its message, producing each once.
    @Test func recordsRefusedByAFullQueueAreProducedOnceWhenSpaceFreesUp() async throws {
        let kafka = try TestCluster()
        let names = try await EOSNames(kafka, "eos-full", partitions: 2, count: 200, outputPartitions: 2)
        let (eosFullGroup, eosFullId, eosFullIn, eosFullOut) = (
            names.group, names.transactionalId, names.input, names.output
        )
        let committed = CommittedResults()
        let tinyQueue = Self.producerSettings(kafka).withProperty("queue.buffering.max.messages", "4").withProperty(
            "linger.ms", "1")
        let control = Self.pipeline(
            kafka, input: eosFullIn, group: eosFullGroup, transactionalId: eosFullId, producer: tinyQueue,
            committed: committed
        ) { message in
            let n = Int(message.record.value.dropFirst())!
            let record = { (suffix: String) in
                ProducerRecord<String, String>(
                    topic: eosFullOut, key: message.record.key, value: message.record.value + suffix)
            }
            return n % 2 == 0
                ? .single(record(""), passThrough: message.partitionOffset)
                : .multi([record("-a"), record("-b"), record("-c")], passThrough: message.partitionOffset)
        }
        try await committed.waitFor(total: 200)
        try await control.drainAndShutdown()

        #expect(committed.offsetsByPartition() == [0: Array(0..<100), 1: Array(0..<100)])
        let values = try await TopicReader.allValues(
            topic: eosFullOut, partitions: 2, bootstrapServers: kafka.bootstrapServers, isolation: .readCommitted)
        let expected = (0..<200).flatMap { n in n % 2 == 0 ? ["v\(n)"] : ["v\(n)-a", "v\(n)-b", "v\(n)-c"] }
        #expect(values.sorted() == expected.sorted())
    }

    @Test(.enabled(if: TestClusterMode.isEmbedded, "injects faults into the embedded cluster"))
    func anAbortableErrorAbortsRewindsAndGoesOnWithNothingSkippedOrCommittedTwice() async throws {
        let kafka = try TestCluster()
        let names = try await EOSNames(kafka, "eos-abort", partitions: 3, count: 3000, outputPartitions: 3)
        let (eosAbortGroup, eosAbortId, eosAbortIn, eosAbortOut) = (
            names.group, names.transactionalId, names.input, names.output
        )
        let committed = CommittedResults()
        let injected = Mutex(false)
        let control = Self.pipeline(
            kafka, input: eosAbortIn, group: eosAbortGroup, transactionalId: eosAbortId, committed: committed
        ) { message in
            // Half-way through, make the next produce request fail: librdkafka makes the transaction abortable.
            if message.record.value == "v1500",
                !injected.withLock({
                    let was = $0
                    $0 = true
                    return was
                })
            {
                // 59: UNKNOWN_PRODUCER_ID.
                try kafka.requireEmbedded().failNextRequests(.produce, with: [KafkaErrorCode(rawValue: 59)])
            }
            try await Task.sleep(for: .microseconds(200))
            return .single(
                ProducerRecord(topic: eosAbortOut, key: message.record.key, value: "out-" + message.record.value),
                passThrough: message.partitionOffset)
        }
        try await committed.waitFor(total: 3000)
        try await control.drainAndShutdown()

        #expect(
            committed.offsetsByPartition() == [0: Array(0..<1000), 1: Array(0..<1000), 2: Array(0..<1000)],
            "after the abort every partition was read again from its last committed offset: each offset committed exactly once, in order"
        )
        #expect(committed.total == 3000)
        // On the mock cluster an aborted transaction's records stay visible (on a real broker
        // read_committed readers would not see them); whether the failed transaction had written any
        // before its produce request failed depends on timing, so the surplus is reported, not asserted.
        let uncommitted = try await TopicReader.allValues(
            topic: eosAbortOut, partitions: 3, bootstrapServers: kafka.bootstrapServers, isolation: .readUncommitted)
        #expect(Set(uncommitted) == Set((0..<3000).map { "out-v\($0)" }), "nothing skipped")
        print(
            "aborted transaction: \(uncommitted.count - 3000) records of it visible to read_uncommitted readers on the mock"
        )
    }

    @Test(
        .enabled(if: TestClusterMode.isEmbedded, "injects faults into the embedded cluster"),
        arguments: [
            (KafkaAPI.endTxn, KafkaErrorCode.producerFenced), (.produce, .invalidProducerEpoch),
            (.endTxn, .invalidProducerEpoch),
        ])
    func aFencedProducerFailsTheStreamWithTheTypedError(api: KafkaAPI, code: KafkaErrorCode) async throws {
        let kafka = try TestCluster()
        let names = try await EOSNames(kafka, "eos-fenced", partitions: 2, count: 2000, outputPartitions: 2)
        let (eosFencedGroup, eosFencedId, eosFencedIn, eosFencedOut) = (
            names.group, names.transactionalId, names.input, names.output
        )
        let committed = CommittedResults()
        let injected = Mutex(false)
        let control = Self.pipeline(
            kafka, input: eosFencedIn, group: eosFencedGroup, transactionalId: eosFencedId, committed: committed
        ) { message in
            if committed.total > 0,
                !injected.withLock({
                    let was = $0
                    $0 = true
                    return was
                })
            {
                try kafka.requireEmbedded().failNextRequests(api, with: [code])
            }
            try await Task.sleep(for: .microseconds(200))
            return .single(
                ProducerRecord(topic: eosFencedOut, value: message.record.value), passThrough: message.partitionOffset)
        }
        do {
            try await control.streamCompletion.value
            Issue.record("the stream should have failed")
        } catch let error as KafkaError {
            #expect(error.kind == .fenced, "\(error)")
            #expect(
                error.message.contains("another instance with the same transactional id 'eos-fenced' took over"),
                "\(error)")
        }
        await control.shutdown()
        #expect(committed.total < 2000, "the stream stopped at the fencing")
    }

    /// Transactional offset sends never report success that did not happen: offsets the group
    /// coordinator refuses (here, for good: the group is not this member's to commit to) fail
    /// the stream with a typed error (each refused transaction aborted, none reported committed).
    @Test(.enabled(if: TestClusterMode.isEmbedded, "injects faults into the embedded cluster"))
    func offsetsTheCoordinatorRefusesInATransactionFailTheStreamWithATypedError() async throws {
        let kafka = try TestCluster()
        let names = try await EOSNames(kafka, "eos-offsets-refused", partitions: 2, count: 2000, outputPartitions: 2)
        let committed = CommittedResults()
        let injected = Mutex(false)
        let control = Self.pipeline(
            kafka, input: names.input, group: names.group, transactionalId: names.transactionalId, committed: committed
        ) { message in
            if committed.total > 0,
                !injected.withLock({
                    let was = $0
                    $0 = true
                    return was
                })
            {
                try kafka.requireEmbedded().failNextRequests(
                    .txnOffsetCommit, with: Array(repeating: .groupAuthorizationFailed, count: 50))
            }
            try await Task.sleep(for: .microseconds(200))
            return .single(
                ProducerRecord(topic: names.output, value: message.record.value), passThrough: message.partitionOffset)
        }
        var failure: KafkaError?
        do {
            try await control.streamCompletion.value
        } catch let error as KafkaError {
            failure = error
        }
        try kafka.requireEmbedded().clearRequestErrors(.txnOffsetCommit)
        await control.shutdown()
        let error = try #require(
            failure, "the stream completed although the coordinator refused its transaction's offsets")
        #expect(error.kind != .commitTimeout, "a refusal reported as a timeout: \(error)")
        // Every refused transaction is aborted (its results never emitted) and retried from the last
        // commit; after a run of aborts the stream gives up saying nothing of them was committed.
        // (The mock does not store transactional offsets, so the group's offsets are not compared
        // here; make test-external checks that they become the group's committed offsets.)
        #expect(error.kind == .transactionAborted, "\(error)")
        #expect(error.code == KafkaErrorCode.groupAuthorizationFailed.rawValue, "the refusal's code: \(error)")
        #expect(
            !error.partitions.isEmpty && error.partitions.allSatisfy { $0.topic == names.input },
            "the refused partitions are named: \(error)")
        #expect(committed.total < 2000, "the stream stopped at the refusal")
    }

    @Test(.enabled(if: TestClusterMode.isEmbedded, "injects faults into the embedded cluster"))
    func retriedCoordinatorErrorsAndAnOutageOfTheCoordinatorAreRidden() async throws {
        let kafka = try TestCluster(brokers: 3)
        let names = try await EOSNames(kafka, "eos-outage", partitions: 3, count: 1500, outputPartitions: 3)
        let (eosOutageGroup, eosOutageId, eosOutageIn, eosOutageOut) = (
            names.group, names.transactionalId, names.input, names.output
        )
        try kafka.requireEmbedded().setCoordinator(.transaction, key: eosOutageId, broker: 3)
        let committed = CommittedResults()
        let step = Mutex(0)
        let control = Self.pipeline(
            kafka, input: eosOutageIn, group: eosOutageGroup, transactionalId: eosOutageId, committed: committed
        ) { message in
            let n = Int(message.record.value.dropFirst())!
            let act = step.withLock { s -> Int in
                if n >= 300, s == 0 {
                    s = 1
                    return 1
                }
                if n >= 700, s == 1 {
                    s = 2
                    return 2
                }
                return 0
            }
            if act == 1 {
                try kafka.requireEmbedded().failNextRequests(
                    .endTxn, with: [.concurrentTransactions, .coordinatorNotAvailable])
                try kafka.requireEmbedded().failNextRequests(.addPartitionsToTxn, with: [.concurrentTransactions])
            } else if act == 2 {
                // The transaction coordinator goes away for a second.
                try kafka.requireEmbedded().brokerDown(3)
                Task {
                    try await Task.sleep(for: .seconds(1))
                    try kafka.requireEmbedded().brokerUp(3)
                }
            }
            try await Task.sleep(for: .microseconds(300))
            return .single(
                ProducerRecord(topic: eosOutageOut, key: message.record.key, value: message.record.value),
                passThrough: message.partitionOffset)
        }
        try await committed.waitFor(total: 1500, timeout: .seconds(60))
        try await control.drainAndShutdown()
        #expect(committed.offsetsByPartition() == [0: Array(0..<500), 1: Array(0..<500), 2: Array(0..<500)])
        let uncommitted = try await TopicReader.allValues(
            topic: eosOutageOut, partitions: 3, bootstrapServers: kafka.bootstrapServers, isolation: .readUncommitted)
        #expect(Set(uncommitted) == Set((0..<1500).map { "v\($0)" }), "nothing skipped")
    }

    @Test(.enabled(if: TestClusterMode.isEmbedded, "injects faults into the embedded cluster"))
    func offsetsBuiltByHandCommitButAnAbortCannotBeReplayed() async throws {
        let kafka = try TestCluster()
        let eosHandGroup = kafka.name("eos-hand-g")
        let eosHandId = kafka.name("eos-hand")
        let eosHandOut = try kafka.createTopic("eos-hand-out", partitions: 1)
        let group = try ConsumerGroupMetadata(groupId: eosHandGroup)
        let messages = (0..<50).map { i in
            ProducerMessage<String, String, TransactionalOffset>.single(
                ProducerRecord(topic: eosHandOut, value: "h\(i)"),
                passThrough: TransactionalOffset(
                    partitionOffset: PartitionOffset(
                        groupId: eosHandGroup, topicPartition: TopicPartition("upstream", 0), offset: Int64(i)),
                    groupMetadata: group))
        }
        // Without faults: the sink commits everything and completes.
        try await Transactional.sink(Self.producerSettings(kafka), transactionalId: eosHandId).run(
            ObservedSequence(messages))
        let values = try await TopicReader.allValues(
            topic: eosHandOut, partitions: 1, bootstrapServers: kafka.bootstrapServers, isolation: .readCommitted)
        #expect(values == (0..<50).map { "h\($0)" })

        // An abortable error: the messages did not come from Transactional.source, so the stream fails.
        try kafka.requireEmbedded().failNextRequests(.produce, with: [KafkaErrorCode(rawValue: 59)])
        do {
            try await Transactional.sink(Self.producerSettings(kafka), transactionalId: eosHandId).run(
                ObservedSequence(messages))
            Issue.record("the sink should have failed")
        } catch let error as KafkaError {
            #expect(error.kind == .transactionAborted, "\(error)")
        }
    }

    @Test func aRawBytesFlowEmitsEachResultAfterItsTransactionCommitted() async throws {
        let kafka = try TestCluster()
        let hand = try await HandMadeOffsets(kafka, "eos-bytes", outputPartitions: 2)
        let (eosBytesId, eosBytesOut) = (hand.transactionalId, hand.output)
        let messages = (0..<120).map { i in
            ProducerMessage<KafkaBytes, KafkaBytes, TransactionalOffset>.single(
                ProducerRecord(topic: eosBytesOut, partition: Int32(i % 2), value: KafkaBytes(Array("b\(i)".utf8))),
                passThrough: hand.offset(i))
        }
        let settings = ProducerSettings<KafkaBytes, KafkaBytes>(properties: [
            "bootstrap.servers": kafka.bootstrapServers, "linger.ms": "2",
        ])
        var offsets: [Int64] = []
        for try await result in ObservedSequence(messages).via(
            Transactional.flow(settings, transactionalId: eosBytesId))
        {
            offsets.append(result.passThrough.partitionOffset.offset)
            #expect(result.metadata.allSatisfy { $0.offset >= 0 })
        }
        #expect(offsets == Array(0..<120), "one result per message, in input order")
        let values = try await TopicReader.allValues(
            topic: eosBytesOut, partitions: 2, bootstrapServers: kafka.bootstrapServers, isolation: .readCommitted)
        #expect(Set(values) == Set((0..<120).map { "b\($0)" }) && values.count == 120)
    }

    @Test func aRecordLibrdkafkaRefusesFailsTheStreamAfterAbortingTheTransaction() async throws {
        let kafka = try TestCluster()
        let hand = try await HandMadeOffsets(kafka, "eos-refused", outputPartitions: 1)
        let (eosRefusedId, eosRefusedOut) = (hand.transactionalId, hand.output)
        let offset = hand.offset
        let messages: [ProducerMessage<String, String, TransactionalOffset>] = [
            .single(ProducerRecord(topic: eosRefusedOut, value: "ok"), passThrough: offset(0)),
            .single(
                ProducerRecord(topic: eosRefusedOut, partition: 7, value: "no such partition"), passThrough: offset(1)),
        ]
        do {
            try await Transactional.sink(Self.producerSettings(kafka), transactionalId: eosRefusedId).run(
                ObservedSequence(messages))
            Issue.record("the sink should have failed")
        } catch let error as KafkaError {
            #expect(error.kind == .deliveryFailed, "\(error)")
            #expect(error.message.contains(eosRefusedOut), "\(error)")
        }
    }

    @Test func anUpstreamFailureAbortsTheOpenTransactionAndIsRethrown() async throws {
        struct Boom: Error {}
        let kafka = try TestCluster()
        let hand = try await HandMadeOffsets(kafka, "eos-upfail", outputPartitions: 1)
        let (eosUpfailId, eosUpfailOut) = (hand.transactionalId, hand.output)
        let upstream = AsyncThrowingStream<ProducerMessage<String, String, TransactionalOffset>, any Error> {
            continuation in
            continuation.yield(
                .single(
                    ProducerRecord(topic: eosUpfailOut, value: "x"),
                    passThrough: hand.offset(0)))
            continuation.finish(throwing: Boom())
        }
        await #expect(throws: Boom.self) {
            try await Transactional.sink(Self.producerSettings(kafka), transactionalId: eosUpfailId).run(upstream)
        }
    }

    @Test func badSettingsFailTheStreamWithATypedError() async throws {
        let kafka = try TestCluster()
        let sink = Transactional.sink(Self.producerSettings(kafka), transactionalId: "x", eosCommitInterval: .zero)
        await #expect(throws: KafkaError.self) {
            try await sink.run(AsyncStream<ProducerMessage<String, String, TransactionalOffset>> { $0.finish() })
        }
        await #expect(throws: KafkaError.self) {
            try await Transactional.sink(Self.producerSettings(kafka), transactionalId: "").run(
                AsyncStream<ProducerMessage<String, String, TransactionalOffset>> { $0.finish() })
        }
    }
}

/// A transactional test's names, unique per run on an external cluster: the group `<base>-g`, the
/// transactional id `<base>`, a topic `<base>-in` seeded with `count` records round-robin and an
/// empty `<base>-out`.
struct EOSNames {
    let group: String
    let transactionalId: String
    let input: String
    let output: String

    init(_ kafka: TestCluster, _ base: String, partitions: Int32, count: Int, outputPartitions: Int) async throws {
        group = kafka.name(base + "-g")
        transactionalId = kafka.name(base)
        input = try await TransactionalPipelineTests.seed(kafka, base + "-in", partitions: partitions, count: count)
        output = try kafka.createTopic(base + "-out", partitions: outputPartitions)
    }
}

/// Offsets built by hand (not read by a source) for a transactional stage, with run-unique names:
/// the transactional id `<base>`, the output topic `<base>-out`, the group `<base>-g`, and the
/// offsets' topic `<base>-up`, created because a Kafka broker refuses TxnOffsetCommit for an unknown one.
struct HandMadeOffsets {
    let transactionalId: String
    let output: String
    private let groupId: String
    private let group: ConsumerGroupMetadata
    private let topic: String

    init(_ kafka: TestCluster, _ base: String, outputPartitions: Int) async throws {
        transactionalId = kafka.name(base)
        output = try kafka.createTopic(base + "-out", partitions: outputPartitions)
        groupId = kafka.name(base + "-g")
        group = try ConsumerGroupMetadata(groupId: groupId)
        topic = try kafka.createTopic(base + "-up", partitions: 1)
    }

    /// Offset `i` of the offsets' topic's partition 0.
    func offset(_ i: Int) -> TransactionalOffset {
        TransactionalOffset(
            partitionOffset: PartitionOffset(
                groupId: groupId, topicPartition: TopicPartition(topic, 0), offset: Int64(i)), groupMetadata: group)
    }
}

/// Collects the results a transactional flow emits (each after its transaction committed).
final class CommittedResults: Sendable {
    private struct State {
        var results: [ProducerResult<String, String, TransactionalOffset>] = []
        var arrivals: [ContinuousClock.Instant] = []
    }

    private let state = Mutex(State())
    private let gate = CountGate()
    /// Signalled on every result, for waits on a thread that must not suspend.
    let arrival = DispatchSemaphore(value: 0)

    func add(_ result: ProducerResult<String, String, TransactionalOffset>) {
        let count = state.withLock { s -> Int in
            s.results.append(result)
            s.arrivals.append(.now)
            return s.results.count
        }
        gate.reached(count)
        arrival.signal()
    }

    var total: Int { state.withLock { $0.results.count } }
    func results() -> [ProducerResult<String, String, TransactionalOffset>] { state.withLock { $0.results } }

    /// How many groups the results arrived in, groups being separated by more than `gap`.
    func bursts(gap: Duration) -> Int {
        let arrivals = state.withLock { $0.arrivals }
        guard !arrivals.isEmpty else { return 0 }
        return 1 + zip(arrivals, arrivals.dropFirst()).filter { $1 - $0 > gap }.count
    }

    /// The committed input offsets per input partition, in the order they were committed.
    func offsetsByPartition() -> [Int32: [Int64]] {
        Dictionary(grouping: results().map(\.passThrough.partitionOffset), by: \.topicPartition.partition).mapValues {
            $0.map(\.offset)
        }
    }

    /// Suspends until `total` results were collected, or records an issue after `timeout` (times
    /// ``TestTimeScale/factor``: a hang guard, which instrumented builds under load need longer).
    func waitFor(total: Int, timeout: Duration = .seconds(30)) async throws {
        if await !gate.wait(for: total, timeout: timeout * TestTimeScale.factor) {
            Issue.record("timed out waiting for \(total) committed results; got \(self.total)")
        }
    }
}
