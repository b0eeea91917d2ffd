import ReactiveKafka
import ReactiveKafkaTestKit
import Testing

/// What librdkafka's mock cluster (which runs every test here) does not do for
/// transactions, measured. These pin the limits the README states: if a newer
/// librdkafka lifts one, its test fails, and the README and the exactly-once
/// tests can then check that property for real.
@Suite(.serialized) struct MockClusterTransactionLimitsTests {
    static func producer(_ kafka: EmbeddedKafka, id: String) throws -> TransactionalProducer<String, String> {
        try TransactionalProducer(
            kafka.producerSettings().withProperty("transaction.timeout.ms", "10000"), transactionalId: id)
    }

    @Test func abortedRecordsAreNotHiddenFromReadCommittedReaders() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("lim-aborted", partitions: 1)
        let producer = try Self.producer(kafka, id: "lim-aborted")
        try await producer.transaction { t in try await t.send(ProducerRecord(topic: "lim-aborted", value: "committed"))
        }
        // The commit flushes the record, then EndTxn fails with an abortable error: the transaction is aborted.
        try kafka.failNextRequests(.endTxn, with: [KafkaErrorCode(rawValue: 59)]) // UNKNOWN_PRODUCER_ID
        await #expect(throws: KafkaError.self) {
            try await producer.transaction { t in
                try await t.send(ProducerRecord(topic: "lim-aborted", value: "aborted"))
            }
        }
        await producer.close()
        let seen = try await TopicReader.allValues(
            topic: "lim-aborted", partitions: 1, bootstrapServers: kafka.bootstrapServers, isolation: .readCommitted)
        // A real broker answers a read_committed fetch with the aborted transactions, and the reader skips them.
        #expect(
            seen == ["committed", "aborted"],
            "mock limit: an aborted transaction's records reach read_committed readers")
    }

    @Test func offsetsSentWithATransactionAreNotStored() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("lim-offsets-in", partitions: 1)
        try kafka.createTopic("lim-offsets-out", partitions: 1)
        let producer = try Self.producer(kafka, id: "lim-offsets")
        let group = try ConsumerGroupMetadata(groupId: "lim-offsets-g")
        try await producer.transaction { t in
            try await t.send(ProducerRecord(topic: "lim-offsets-out", value: "x"))
            try await t.sendOffsets([TopicPartition("lim-offsets-in", 0): 42], groupMetadata: group)
        }
        await producer.close()
        let committed = try await TestData.committedOffsets(
            bootstrapServers: kafka.bootstrapServers, group: "lim-offsets-g", topic: "lim-offsets-in", partitions: 1)
        // A real broker's group coordinator would now hold offset 42.
        #expect(committed.isEmpty, "mock limit: TxnOffsetCommit is accepted but the group's offsets stay unchanged")
    }

    @Test func aSecondInstanceWithTheSameTransactionalIdDoesNotFenceTheFirst() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("lim-fence", partitions: 1)
        let first = try Self.producer(kafka, id: "lim-fence")
        try await first.transaction { t in try await t.send(ProducerRecord(topic: "lim-fence", value: "first-1")) }
        let second = try Self.producer(kafka, id: "lim-fence")
        try await second.transaction { t in try await t.send(ProducerRecord(topic: "lim-fence", value: "second-1")) }
        // A real broker bumped the epoch at the second init_transactions: this commit would fail with PRODUCER_FENCED.
        var firstStillCommits = true
        do {
            try await first.transaction { t in try await t.send(ProducerRecord(topic: "lim-fence", value: "first-2")) }
        } catch {
            firstStillCommits = false
        }
        await first.close()
        await second.close()
        #expect(firstStillCommits, "mock limit: the older producer is not fenced by a second init_transactions")
    }

    @Test func committedTransactionsLeaveNoMarkersInThePartition() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("lim-markers", partitions: 1)
        let producer = try Self.producer(kafka, id: "lim-markers")
        for i in 0..<3 {
            try await producer.transaction { t in try await t.send(ProducerRecord(topic: "lim-markers", value: "r\(i)"))
            }
        }
        await producer.close()
        let end = try await TopicReader.endOffsets(
            topic: "lim-markers", partitions: 1, bootstrapServers: kafka.bootstrapServers)
        // A real broker writes a commit marker per transaction and partition: the end offset would be 6.
        #expect(end[0] == 3, "mock limit: EndTxn writes no control records")
    }
}
