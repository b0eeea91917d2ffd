import ReactiveKafka
import ReactiveKafkaTestKit
import Testing

/// `TransactionalProducer` on the embedded cluster, with librdkafka's
/// transactional calls for real. What the mock cluster cannot show (aborted
/// records hidden from `read_committed` readers, fencing by a second
/// `init_transactions`) is provoked with its fault injection instead.
@Suite(.serialized) struct TransactionalProducerTests {
    static func settings(_ kafka: EmbeddedKafka) -> ProducerSettings<String, String> {
        kafka.producerSettings().withProperty("transaction.timeout.ms", "10000")
    }

    @Test func aTransactionWritesManyRecordsToSeveralPartitionsAndCommitsThem() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("tp-a", partitions: 3)
        try kafka.createTopic("tp-b", partitions: 2)
        let producer = try TransactionalProducer(Self.settings(kafka), transactionalId: "tp-1")
        let sent = try await producer.transaction { t in
            for i in 0..<600 {
                try await t.send(ProducerRecord(topic: i % 2 == 0 ? "tp-a" : "tp-b", key: "k\(i % 7)", value: "v\(i)"))
            }
            return 600
        }
        #expect(sent == 600, "the closure's result is returned")
        // A second transaction on the same producer.
        try await producer.transaction { t in
            try await t.send(ProducerRecord(topic: "tp-a", partition: 0, value: "second"))
        }
        await producer.close()

        let a = try await TopicReader.allValues(
            topic: "tp-a", partitions: 3, bootstrapServers: kafka.bootstrapServers, isolation: .readCommitted)
        let b = try await TopicReader.allValues(
            topic: "tp-b", partitions: 2, bootstrapServers: kafka.bootstrapServers, isolation: .readCommitted)
        #expect(Set(a) == Set((0..<600).filter { $0 % 2 == 0 }.map { "v\($0)" } + ["second"]))
        #expect(Set(b) == Set((0..<600).filter { $0 % 2 == 1 }.map { "v\($0)" }))
        #expect(a.count + b.count == 601, "each record once")
    }

    @Test func aThrowingClosureAbortsAndRethrows() async throws {
        struct Boom: Error {}
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("tp-abort", partitions: 1)
        let producer = try TransactionalProducer(Self.settings(kafka), transactionalId: "tp-abort")
        await #expect(throws: Boom.self) {
            try await producer.transaction { t in
                try await t.send(ProducerRecord(topic: "tp-abort", value: "aborted"))
                throw Boom()
            }
        }
        // The producer goes on: the next transaction commits.
        try await producer.transaction { t in try await t.send(ProducerRecord(topic: "tp-abort", value: "committed")) }
        await producer.close()
        let uncommitted = try await TopicReader.allValues(
            topic: "tp-abort", partitions: 1, bootstrapServers: kafka.bootstrapServers, isolation: .readUncommitted)
        #expect(uncommitted.contains("committed"))
    }

    @Test func usingTheTransactionAfterItEndedIsAnError() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("tp-late", partitions: 1)
        let producer = try TransactionalProducer(Self.settings(kafka), transactionalId: "tp-late")
        let leaked = try await producer.transaction { t in t }
        await #expect(throws: KafkaError.self) {
            try await leaked.send(ProducerRecord(topic: "tp-late", value: "late"))
        }
        await producer.close()
    }

    @Test func anAbortableErrorAbortsTheTransactionAndTheNextOneCommits() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("tp-abortable", partitions: 1)
        let producer = try TransactionalProducer(Self.settings(kafka), transactionalId: "tp-abortable")
        try await producer.transaction { t in try await t.send(ProducerRecord(topic: "tp-abortable", value: "first")) }
        // Adding the partition to the next transaction is refused: librdkafka makes the transaction abortable.
        try kafka.failNextRequests(.addPartitionsToTxn, with: [.topicAuthorizationFailed])
        do {
            try await producer.transaction { t in
                try await t.send(ProducerRecord(topic: "tp-abortable", value: "refused"))
            }
            Issue.record("the commit should have failed")
        } catch let error as KafkaError {
            #expect(error.kind == .transactionAborted, "\(error)")
        }
        try await producer.transaction { t in try await t.send(ProducerRecord(topic: "tp-abortable", value: "third")) }
        await producer.close()
        let values = try await TopicReader.allValues(
            topic: "tp-abortable", partitions: 1, bootstrapServers: kafka.bootstrapServers, isolation: .readCommitted)
        #expect(values.contains("first") && values.contains("third"))
    }

    @Test(arguments: [KafkaErrorCode.producerFenced, .invalidProducerEpoch])
    func aFencedProducerFailsWithTheTypedErrorAndStaysFailed(code: KafkaErrorCode) async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("tp-fenced", partitions: 1)
        let producer = try TransactionalProducer(Self.settings(kafka), transactionalId: "tp-fenced")
        try await producer.transaction { t in try await t.send(ProducerRecord(topic: "tp-fenced", value: "before")) }
        try kafka.failNextRequests(.endTxn, with: [code])
        do {
            try await producer.transaction { t in try await t.send(ProducerRecord(topic: "tp-fenced", value: "fenced"))
            }
            Issue.record("the commit should have failed")
        } catch let error as KafkaError {
            #expect(error.kind == .fenced, "\(error)")
            #expect(
                error.message.contains("another instance with the same transactional id 'tp-fenced' took over"),
                "\(error)")
        }
        do {
            try await producer.transaction { t in try await t.send(ProducerRecord(topic: "tp-fenced", value: "after")) }
            Issue.record("a fenced producer must not run another transaction")
        } catch let error as KafkaError {
            #expect(error.kind == .fenced, "\(error)")
        }
        await producer.close()
    }

    @Test func offsetsSentWithATransactionAreAcceptedByTheCluster() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("tp-offsets-in", partitions: 2)
        try kafka.createTopic("tp-offsets-out", partitions: 1)
        let producer = try TransactionalProducer(Self.settings(kafka), transactionalId: "tp-offsets")
        let group = try ConsumerGroupMetadata(groupId: "tp-offsets-group")
        // Accepted: a transaction that sends offsets commits, and its record is visible.
        try await producer.transaction { t in
            try await t.send(ProducerRecord(topic: "tp-offsets-out", value: "x"))
            try await t.sendOffsets(
                [TopicPartition("tp-offsets-in", 0): 5, TopicPartition("tp-offsets-in", 1): 7], groupMetadata: group)
        }
        let committedRecords = try await TopicReader.allValues(
            topic: "tp-offsets-out", partitions: 1, bootstrapServers: kafka.bootstrapServers, isolation: .readCommitted)
        #expect(committedRecords == ["x"])

        // Sent to the cluster, not dropped on the way: when the group coordinator refuses the
        // TxnOffsetCommit, the same transaction fails (a sendOffsets that sent nothing would
        // let it commit).
        try kafka.failNextRequests(.txnOffsetCommit, with: [.groupAuthorizationFailed])
        let refused = await #expect(throws: KafkaError.self) {
            try await producer.transaction { t in
                try await t.send(ProducerRecord(topic: "tp-offsets-out", value: "refused"))
                try await t.sendOffsets(
                    [TopicPartition("tp-offsets-in", 0): 9, TopicPartition("tp-offsets-in", 1): 11],
                    groupMetadata: group)
            }
        }
        #expect(
            refused?.partitions == [TopicPartition("tp-offsets-in", 0), TopicPartition("tp-offsets-in", 1)],
            "the refusal names the partitions: \(String(describing: refused))")
        #expect(refused?.code == KafkaErrorCode.groupAuthorizationFailed.rawValue)
        await producer.close()

        // The mock cluster accepts TxnOffsetCommit but does not store the offsets (a documented
        // limit): the group holds the offsets of the committed transaction or none, never those
        // of the refused one.
        let committed = try await TestData.committedOffsets(
            bootstrapServers: kafka.bootstrapServers, group: "tp-offsets-group", topic: "tp-offsets-in", partitions: 2)
        #expect(committed == [0: 5, 1: 7] || committed.isEmpty, "\(committed)")
    }

    @Test func anEmptyTransactionalIdIsATypedError() async throws {
        let kafka = try EmbeddedKafka()
        #expect(throws: KafkaError.self) { try TransactionalProducer(Self.settings(kafka), transactionalId: "") }
        #expect(throws: KafkaError.self) {
            try TransactionalProducer(
                Self.settings(kafka).withProperty("transactional.id", "other"), transactionalId: "mine")
        }
    }
}
