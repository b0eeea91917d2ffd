import CRdKafka
import Foundation
import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Synchronization
import Testing

/// What librdkafka's mock cluster cannot show, asserted against a Kafka broker
/// (`KAFKA_BOOTSTRAP_SERVERS=host:port make test-external`): aborted records
/// hidden from `read_committed` readers, transactional offsets stored as the
/// group's commits, fencing by a second instance, a restarted exactly-once
/// pipeline resuming after its last committed transaction, and offsets looked
/// up by time. (Zero duplicates on graceful eager and cooperative membership
/// changes: `ConsumerGroupRebalanceTests`.)
@Suite(.serialized, .enabled(if: TestClusterMode.isExternal, "needs a Kafka broker: KAFKA_BOOTSTRAP_SERVERS"))
struct ExternalClusterTests {
    static func producerSettings(_ kafka: TestCluster) -> ProducerSettings<String, String> {
        kafka.producerSettings().withProperty("transaction.timeout.ms", "10000")
    }

    /// Creates `<base>-in`, `partitions` partitions holding `count` records `v0`, `v1`, … spread
    /// round-robin, and an empty `<base>-out` of as many partitions; returns their names.
    static func topics(_ kafka: TestCluster, _ base: String, partitions: Int32, count: Int) async throws -> (
        input: String, output: String
    ) {
        let input = try kafka.createTopic(base + "-in", partitions: Int(partitions))
        let records = (0..<count).map { (key: "k\($0)" as String?, value: "v\($0)") }
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: input, records: records, roundRobinOver: partitions)
        return (input, try kafka.createTopic(base + "-out", partitions: Int(partitions)))
    }

    /// Transactional.source → map(`envelope`) → Transactional.flow → `committed`.
    static func pipeline(
        _ kafka: TestCluster, input: String, group: String, transactionalId: String, committed: CommittedResults,
        envelope:
            @escaping @Sendable (TransactionalMessage<String, String>) async throws -> ProducerMessage<
                String, String, TransactionalOffset
            >
    ) -> DrainingControl<Void> {
        Transactional.source(kafka.consumerSettings(group: group), subscription: .topics(input))
            .map(envelope)
            .via(
                Transactional.flow(
                    producerSettings(kafka), transactionalId: transactionalId, eosCommitInterval: .milliseconds(100))
            )
            .to(Sinks.forEach { committed.add($0) })
            .start()
    }

    struct SimulatedCrash: Error {}

    @Test func readCommittedReadersNeverSeeAbortedRecords() async throws {
        let kafka = try TestCluster()
        let topic = try kafka.createTopic("ext-abort", partitions: 2)
        let producer = try TransactionalProducer(
            Self.producerSettings(kafka), transactionalId: kafka.name("ext-abort-tx"))
        for round in 0..<3 {
            try await producer.transaction { t in
                for i in 0..<100 {
                    try await t.send(ProducerRecord(topic: topic, key: "k\(i)", value: "committed-\(round)-\(i)"))
                }
            }
            // The connector's abort path: records sent, then the closure throws.
            await #expect(throws: SimulatedCrash.self) {
                try await producer.transaction { t in
                    for i in 0..<100 {
                        try await t.send(ProducerRecord(topic: topic, key: "k\(i)", value: "aborted-\(round)-\(i)"))
                    }
                    throw SimulatedCrash()
                }
            }
        }
        await producer.close()
        // Aborting purges what librdkafka had not sent yet, so the transactions above may leave nothing
        // in the log; these are flushed (acknowledged, in the log) before they are aborted.
        try await onThread {
            try AbortedTransactions.write(
                topic: topic, values: (0..<100).map { "aborted-flushed-\($0)" },
                transactionalId: kafka.name("ext-abort-raw"), bootstrapServers: kafka.bootstrapServers)
        }

        let committed = try await TopicReader.allValues(
            topic: topic, partitions: 2, bootstrapServers: kafka.bootstrapServers, isolation: .readCommitted)
        let uncommitted = try await TopicReader.allValues(
            topic: topic, partitions: 2, bootstrapServers: kafka.bootstrapServers, isolation: .readUncommitted)
        #expect(committed.filter { $0.hasPrefix("aborted-") }.isEmpty, "a read_committed reader saw aborted records")
        #expect(Set(committed) == Set((0..<3).flatMap { r in (0..<100).map { "committed-\(r)-\($0)" } }))
        #expect(committed.count == 300)
        // The aborted records are in the log (a read_uncommitted reader sees them): the filter, not their absence, hid them.
        #expect(Set(uncommitted).isSuperset(of: (0..<100).map { "aborted-flushed-\($0)" }))
    }

    @Test func transactionalOffsetsBecomeTheGroupsCommittedOffsets() async throws {
        let kafka = try TestCluster()
        let (input, output) = try await Self.topics(kafka, "ext-txo", partitions: 3, count: 1500)
        let group = kafka.name("ext-txo-g")
        let committed = CommittedResults()
        let control = Self.pipeline(
            kafka, input: input, group: group, transactionalId: kafka.name("ext-txo"), committed: committed
        ) { message in
            .single(
                ProducerRecord(topic: output, key: message.record.key, value: "out-" + message.record.value),
                passThrough: message.partitionOffset)
        }
        try await committed.waitFor(total: 1500)
        try await control.drainAndShutdown()

        // Only send_offsets_to_transaction committed for this group: nothing else commits in a transactional pipeline.
        let offsets = try await TestData.committedOffsets(
            bootstrapServers: kafka.bootstrapServers, group: group, topic: input, partitions: 3)
        #expect(
            offsets == [0: 500, 1: 500, 2: 500], "the group's committed offsets are the ones sent with the transactions"
        )
    }

    @Test func aSecondInstanceWithTheSameTransactionalIdFencesTheFirst() async throws {
        let kafka = try TestCluster()
        let (input, output) = try await Self.topics(kafka, "ext-fence", partitions: 2, count: 20_000)
        let transactionalId = kafka.name("ext-fence")
        let committed = CommittedResults()
        let control = Self.pipeline(
            kafka, input: input, group: kafka.name("ext-fence-g"), transactionalId: transactionalId,
            committed: committed
        ) { message in
            // Slow enough that the stream is still running when the second instance starts.
            try await Task.sleep(for: .milliseconds(1))
            return .single(
                ProducerRecord(topic: output, value: message.record.value), passThrough: message.partitionOffset)
        }
        try await committed.waitFor(total: 100)
        // The second instance: its init_transactions bumps the producer epoch, fencing the first.
        let zombieKiller = try TransactionalProducer(Self.producerSettings(kafka), transactionalId: transactionalId)
        try await zombieKiller.transaction { t in
            try await t.send(ProducerRecord(topic: output, partition: 0, value: "from-the-second-instance"))
        }
        await zombieKiller.close()
        do {
            try await control.streamCompletion.value
            Issue.record("the first instance's stream should have failed: it was fenced")
        } catch let error as KafkaError {
            #expect(error.kind == .fenced, "\(error)")
        }
        await control.shutdown()
        #expect(committed.total < 20_000, "the first instance stopped at the fencing")
    }

    @Test func aRestartedPipelineResumesAfterTheLastCommittedTransaction() async throws {
        let kafka = try TestCluster()
        let count = 3000
        let (input, output) = try await Self.topics(kafka, "ext-resume", partitions: 3, count: count)
        let group = kafka.name("ext-resume-g")
        let transactionalId = kafka.name("ext-resume")
        let envelope:
            @Sendable (TransactionalMessage<String, String>) async throws -> ProducerMessage<
                String, String, TransactionalOffset
            > = { message in
                .single(
                    ProducerRecord(topic: output, key: message.record.key, value: "out-" + message.record.value),
                    passThrough: message.partitionOffset)
            }
        // First run: crashes in the middle of a transaction, after some transactions committed.
        let first = CommittedResults()
        let crashAfter = 1200
        let processed = Atomic<Int>(0)
        let crashing = Self.pipeline(
            kafka, input: input, group: group, transactionalId: transactionalId, committed: first
        ) { message in
            if processed.add(1, ordering: .relaxed).newValue > crashAfter { throw SimulatedCrash() }
            try await Task.sleep(for: .microseconds(300))
            return try await envelope(message)
        }
        await #expect(throws: SimulatedCrash.self) { try await crashing.streamCompletion.value }
        await crashing.shutdown()
        #expect(
            first.total > 0 && first.total <= crashAfter,
            "the first run committed some transactions before it crashed: \(first.total)")

        // Second run, same group and transactional id: starts after the last committed transaction.
        let second = CommittedResults()
        let resumed = Self.pipeline(
            kafka, input: input, group: group, transactionalId: transactionalId, committed: second, envelope: envelope)
        try await second.waitFor(total: count - first.total)
        try await resumed.drainAndShutdown()

        let firstOffsets = first.offsetsByPartition()
        let secondOffsets = second.offsetsByPartition()
        for p in Int32(0)..<3 {
            let before = firstOffsets[p] ?? []
            let after = secondOffsets[p] ?? []
            #expect(
                before + after == Array(0..<Int64(count / 3)),
                "partition \(p): the restart went on right after the last committed offset")
        }
        let values = try await TopicReader.allValues(
            topic: output, partitions: 3, bootstrapServers: kafka.bootstrapServers, isolation: .readCommitted)
        #expect(
            values.count == count,
            "each input produced exactly once as seen by read_committed readers (the crashed transaction's records are aborted)"
        )
        #expect(Set(values) == Set((0..<count).map { "out-v\($0)" }))
    }

    @Test func offsetsForTimesFindsTheFirstRecordAtOrAfterATime() async throws {
        let kafka = try TestCluster()
        let topic = try kafka.createTopic("ext-times", partitions: 2)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: topic, records: (0..<400).map { (nil, "early-\($0)") },
            roundRobinOver: 2)
        // Record timestamps are milliseconds: the later records are stamped strictly after `middle`.
        let middle = Int64(Date().timeIntervalSince1970 * 1000) + 1
        try await Task.sleep(for: .milliseconds(5))
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: topic, records: (0..<600).map { (nil, "late-\($0)") },
            roundRobinOver: 2)

        let client = try MetadataClient(ConsumerSettings().withBootstrapServers(kafka.bootstrapServers))
        defer { client.close() }
        let partitions = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        let found = try await client.offsetsForTimes(Dictionary(uniqueKeysWithValues: partitions.map { ($0, middle) }))
        #expect(
            found == Dictionary(uniqueKeysWithValues: partitions.map { ($0, 200) }),
            "the first late record of each partition")
        let beforeAll = try await client.offsetsForTimes(Dictionary(uniqueKeysWithValues: partitions.map { ($0, 0) }))
        #expect(beforeAll == Dictionary(uniqueKeysWithValues: partitions.map { ($0, 0) }))
        let afterAll = try await client.offsetsForTimes(
            Dictionary(
                uniqueKeysWithValues: partitions.map { ($0, Int64(Date().timeIntervalSince1970 * 1000) + 60_000) }))
        #expect(afterAll.isEmpty, "no record at or after a time in the future")
    }
}

/// Runs blocking `body` on a thread of its own, never on the Swift cooperative pool.
private func onThread(_ body: @escaping @Sendable () throws -> Void) async throws {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.name = "aborted-transactions"
        thread.start()
    }
}

/// Writes records in a transaction and aborts it only after they are acknowledged, straight
/// through librdkafka: aborted records that are certainly in the log.
enum AbortedTransactions {
    struct Failure: Error, CustomStringConvertible { var description: String }

    static func write(topic: String, values: [String], transactionalId: String, bootstrapServers: String) throws {
        var errstr = [CChar](repeating: 0, count: 512)
        let conf = rd_kafka_conf_new()!
        for (key, value) in [
            "bootstrap.servers": bootstrapServers, "transactional.id": transactionalId, "log_level": "0",
        ]
        where rd_kafka_conf_set(conf, key, value, &errstr, errstr.count) != RD_KAFKA_CONF_OK {
            rd_kafka_conf_destroy(conf)
            throw Failure(description: "\(key): \(String(cString: errstr))")
        }
        guard let producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errstr, errstr.count) else {
            throw Failure(description: "producer: \(String(cString: errstr))")
        }
        defer { rd_kafka_destroy(producer) }
        func check(_ error: OpaquePointer?, _ what: String) throws {
            guard let error else { return }
            defer { rd_kafka_error_destroy(error) }
            throw Failure(description: "\(what): \(String(cString: rd_kafka_error_string(error)))")
        }
        try check(rd_kafka_init_transactions(producer, 30_000), "init_transactions")
        try check(rd_kafka_begin_transaction(producer), "begin_transaction")
        let rkt = rd_kafka_topic_new(producer, topic, nil)
        defer { rd_kafka_topic_destroy(rkt) }
        for value in values {
            var bytes = Array(value.utf8)
            let result = bytes.withUnsafeMutableBytes {
                rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, $0.baseAddress, $0.count, nil, 0, nil)
            }
            if result != 0 {
                throw Failure(description: "produce: \(String(cString: rd_kafka_err2str(rd_kafka_last_error())))")
            }
        }
        let flushed = rd_kafka_flush(producer, 30_000)
        if flushed != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw Failure(description: "flush: \(String(cString: rd_kafka_err2str(flushed)))")
        }
        try check(rd_kafka_abort_transaction(producer, 30_000), "abort_transaction")
    }
}
