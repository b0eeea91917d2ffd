import CRdKafka
import Foundation
import Logging
import ReactiveKafkaTestKit
import StreamKit
import Synchronization
import Testing

@testable import ReactiveKafka

/// The sources beyond plain and committable: manual assignments, metadata
/// commits, at-most-once, offset contexts, partitioned and manual-offset sources.
@Suite(.serialized) struct SourceKindsTests {
    static func seeded(_ topic: String, partitions: Int32, records: Int) async throws -> EmbeddedKafka {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic(topic, partitions: Int(partitions))
        let input = (0..<records).map { (key: nil as String?, value: "\(topic)-\($0)") }
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: topic, records: input, roundRobinOver: partitions)
        return kafka
    }

    static func settings(_ kafka: EmbeddedKafka, group: String? = nil) -> ConsumerSettings<String, String> {
        var settings = ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
            .withBootstrapServers(kafka.bootstrapServers)
            .withProperty("auto.offset.reset", "earliest")
            .withProperties(EmbeddedKafka.fastGroupProperties)
        if let group { settings = settings.withGroupId(group) }
        return settings
    }

    @Test func aManualAssignmentReadsExactlyItsPartitionsWithoutAGroup() async throws {
        let kafka = try await Self.seeded("manual", partitions: 4, records: 400)
        let source = Consumer.plainSource(
            Self.settings(kafka), subscription: .assignment(TopicPartition("manual", 1), TopicPartition("manual", 3)))
        var perPartition: [Int32: [Int64]] = [:]
        var count = 0
        for try await record in source {
            perPartition[record.partition, default: []].append(record.offset)
            count += 1
            if count == 200 { break }
        }
        await source.materialized.shutdown()
        #expect(Set(perPartition.keys) == [1, 3])
        #expect(perPartition[1] == Array(0..<100))
        #expect(perPartition[3] == Array(0..<100))
    }

    @Test func anAssignmentWithOffsetsStartsAtThoseOffsets() async throws {
        let kafka = try await Self.seeded("from", partitions: 2, records: 200)
        let start = [TopicPartition("from", 0): Int64(40), TopicPartition("from", 1): Int64(95)]
        let source = Consumer.plainSource(Self.settings(kafka), subscription: .assignmentWithOffset(start))
        var first: [Int32: Int64] = [:]
        var count = 0
        for try await record in source {
            if first[record.partition] == nil { first[record.partition] = record.offset }
            count += 1
            if count == 60 + 5 { break }
        }
        await source.materialized.shutdown()
        #expect(first == [0: 40, 1: 95])
    }

    @Test func anAssignmentFromATimeAfterEveryRecordReadsOnlyNewRecords() async throws {
        let kafka = try await Self.seeded("times", partitions: 1, records: 50)

        // The time is looked up on the cluster, not taken for "the end": a look-up the cluster
        // refuses fails the source with a typed error that names it. (librdkafka's mock cluster
        // answers every look-up by time with "none", that is the end, so where the time falls
        // among the records is checked against a real broker: see
        // anAssignmentFromATimeAmongTheRecordsStartsAtTheFirstRecordAtOrAfterIt.)
        try kafka.failNextRequests(.listOffsets, with: Array(repeating: .topicAuthorizationFailed, count: 10))
        let refused = Consumer.plainSource(
            Self.settings(kafka), subscription: .assignmentOffsetsForTimes([TopicPartition("times", 0): 1]))
        // Bounded: a source that never asks would wait at the end for records that never come.
        let watchdog = Task {
            try await Task.sleep(for: .seconds(15))
            await refused.materialized.shutdown()
        }
        defer { watchdog.cancel() }
        do {
            for try await record in refused { Issue.record("read \(record.value) although the look-up was refused") }
            Issue.record("the source ended without looking the time up")
        } catch let error as KafkaError {
            #expect(error.message.contains("looking up the offsets"), "\(error)")
        }
        await refused.materialized.shutdown()
        try kafka.clearRequestErrors(.listOffsets)

        // Then a time after every record: only records written from now on are read.
        let future = Int64(Date().timeIntervalSince1970 * 1000) + 3_600_000
        let source = Consumer.plainSource(
            Self.settings(kafka), subscription: .assignmentOffsetsForTimes([TopicPartition("times", 0): future]))
        let reader = Task {
            var values: [String] = []
            for try await record in source {
                values.append(record.value)
                if values.count == 3 { break }
            }
            return values
        }
        // The consumer starts at the end: it reads only what is written from now on
        // (written until it has read some, since when it reached the end is not observable).
        let writer = Task {
            var i = 0
            while !Task.isCancelled {
                try await TestData.produce(
                    bootstrapServers: kafka.bootstrapServers, topic: "times", records: [(nil, "new-\(i)")], partition: 0
                )
                i += 1
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        let values = try await reader.value
        writer.cancel()
        await source.materialized.shutdown()
        #expect(values.count == 3)
        #expect(values.allSatisfy { $0.hasPrefix("new-") }, "read \(values): records older than the time were read")
    }

    /// Where a time falls among the records, reading starts at the first record whose
    /// timestamp is at or after it. librdkafka's mock cluster answers every look-up by time
    /// with "none" (`rdkafka_mock_handlers.c`: "FIXME: by timestamp"), so this runs only
    /// against a Kafka-faithful broker: `KAFKA_BOOTSTRAP_SERVERS=host:port swift test`.
    @Test(
        .enabled(
            if: ProcessInfo.processInfo.environment["KAFKA_BOOTSTRAP_SERVERS"] != nil,
            "needs a Kafka-faithful broker in KAFKA_BOOTSTRAP_SERVERS"))
    func anAssignmentFromATimeAmongTheRecordsStartsAtTheFirstRecordAtOrAfterIt() async throws {
        let servers = try #require(ProcessInfo.processInfo.environment["KAFKA_BOOTSTRAP_SERVERS"])
        let topic = "times-mid-\(UUID().uuidString.prefix(8))"
        // 20 records one second apart, into a topic the broker creates on first use.
        let base: Int64 = 1_700_000_000_000
        let producer = try KafkaProducer(
            ProducerSettings(keySerializer: .string, valueSerializer: .string).withBootstrapServers(servers))
        for i in 0..<20 {
            _ = try await producer.send(
                ProducerRecord(
                    topic: topic, partition: 0, value: "t\(i)",
                    timestamp: KafkaTimestamp(milliseconds: base + Int64(i) * 1000)))
        }
        await producer.close()
        let settings = ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
            .withBootstrapServers(servers).withProperty("auto.offset.reset", "earliest")
        // Between two records, exactly on one, before all of them.
        for (time, firstOffset) in [(base + 12_500, Int64(13)), (base + 5_000, Int64(5)), (base - 1, Int64(0))] {
            let source = Consumer.plainSource(
                settings, subscription: .assignmentOffsetsForTimes([TopicPartition(topic, 0): time]))
            let watchdog = Task {
                try await Task.sleep(for: .seconds(30))
                await source.materialized.shutdown()
            }
            var read: [Int64] = []
            for try await record in source {
                read.append(record.offset)
                if read.count == 3 { break }
            }
            watchdog.cancel()
            await source.materialized.shutdown()
            #expect(read == [firstOffset, firstOffset + 1, firstOffset + 2], "from \(time - base) ms")
        }
    }

    @Test func invalidAssignmentsAreTypedErrors() async throws {
        let kafka = try EmbeddedKafka()
        for subscription in [
            Subscription.assignment([]), .assignmentWithOffset([TopicPartition("t", 0): -5]),
            .assignmentOffsetsForTimes([TopicPartition("t", -1): 0]),
        ] {
            let source = Consumer.plainSource(Self.settings(kafka), subscription: subscription)
            await #expect(throws: KafkaError.self) { for try await _ in source {} }
        }
        // Committing needs a group even with a manual assignment.
        let committable = Consumer.committableSource(
            Self.settings(kafka), subscription: .assignment(TopicPartition("t", 0)))
        do {
            for try await _ in committable {}
            Issue.record("a committable source without a group must fail")
        } catch let error as KafkaError {
            #expect(error.kind == .invalidConfiguration)
            #expect(error.message.contains("withGroupId"))
        }
    }

    @Test func commitWithMetadataStoresTheMetadataWithTheOffset() async throws {
        let kafka = try await Self.seeded("meta", partitions: 1, records: 20)
        let source = Consumer.commitWithMetadataSource(
            Self.settings(kafka, group: "g-meta"), subscription: .topics("meta")
        ) { record in
            "processed-by-test:\(record.offset)"
        }
        // Committed while the stream runs: ending it (the break) closes its consumer.
        for try await message in source where message.record.offset == 19 {
            try await message.committableOffset.commit()
            break
        }
        await source.materialized.shutdown()
        let committed = try Self.committedWithMetadata(kafka, group: "g-meta", TopicPartition("meta", 0))
        #expect(committed?.offset == 20)
        #expect(committed?.metadata == "processed-by-test:19")
    }

    @Test func atMostOnceCommitsEachRecordBeforeEmittingIt() async throws {
        let kafka = try await Self.seeded("amo", partitions: 1, records: 30)
        let source = Consumer.atMostOnceSource(Self.settings(kafka, group: "g-amo"), subscription: .topics("amo"))
        var offsets: [Int64] = []
        for try await record in source {
            offsets.append(record.offset)
            // Already committed when it arrives: a crash now would not read it again.
            let committed = try await TestData.committedOffsets(
                bootstrapServers: kafka.bootstrapServers, group: "g-amo", topic: "amo", partitions: 1)
            #expect(committed[0] == record.offset + 1)
            if offsets.count == 5 { break }
        }
        await source.materialized.shutdown()
        #expect(offsets == [0, 1, 2, 3, 4])
    }

    @Test func anOffsetContextTravelsWithTheRecordAndCommits() async throws {
        let kafka = try await Self.seeded("ctx", partitions: 2, records: 100)
        let counter = Counter()
        let control = Consumer.sourceWithOffsetContext(
            Self.settings(kafka, group: "g-ctx"), subscription: .topics("ctx")
        )
        .map { element in
            counter.add(element.record.value.uppercased())
            return element.offset
        }
        .to(Committer.sink(CommitterSettings().withMaxBatch(10)))
        .start()
        try await counter.waitFor(count: 100)
        _ = try await control.drainAndShutdown()
        let committed = try await TestData.committedOffsets(
            bootstrapServers: kafka.bootstrapServers, group: "g-ctx", topic: "ctx", partitions: 2)
        #expect(committed == [0: 50, 1: 50])
    }

    @Test func aPartitionedSourceGivesEachPartitionItsOwnOrderedSubStream() async throws {
        let kafka = try await Self.seeded("parts", partitions: 3, records: 300)
        let source = Consumer.plainPartitionedSource(
            Self.settings(kafka, group: "g-parts"), subscription: .topics("parts"))
        let seen = Locked<[TopicPartition: [Int64]]>([:])
        let subStreams = Locked<[TopicPartition]>([])
        let counter = Counter()
        let stream = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for try await assigned in source {
                    let (partition, subStream) = (assigned.partition, assigned.source)
                    subStreams.withLock { $0.append(partition) }
                    group.addTask {
                        for try await record in subStream {
                            #expect(record.partition == partition.partition)
                            seen.withLock { $0[partition, default: []].append(record.offset) }
                            counter.add(record.value)
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        try await counter.waitFor(count: 300)
        try await source.materialized.drainAndShutdown(stream)
        #expect(subStreams.withLock { $0.sorted() } == (0..<3).map { TopicPartition("parts", $0) })
        #expect(
            seen.withLock { $0 }
                == Dictionary(
                    uniqueKeysWithValues: (0..<3).map { (TopicPartition("parts", $0), Array(Int64(0)..<100)) }))
    }

    /// The look-up may return before librdkafka has started fetching the partitions (it first looks
    /// up where they start, and refuses a seek until then: `_STATE`); with `latest`, nothing is
    /// fetched where they start, so only the end-of-partition event tells that fetching started.
    @Test(arguments: [Duration.zero, .milliseconds(50)], ["earliest", "latest"])
    func aManualOffsetPartitionedSourceResumesFromTheOffsetsItIsGiven(lookUp: Duration, reset: String) async throws {
        let topic = "stored-\(lookUp.components.attoseconds / 1_000_000_000_000_000)-\(reset)"
        let kafka = try await Self.seeded(topic, partitions: 2, records: 200)
        // Offsets the application keeps itself, e.g. in its database with its results.
        let stored = [TopicPartition(topic, 0): Int64(70), TopicPartition(topic, 1): Int64(25)]
        let asked = Locked<Set<TopicPartition>>([])
        let source = Consumer.committablePartitionedManualOffsetSource(
            Self.settings(kafka, group: "g-stored").withProperty("auto.offset.reset", reset),
            subscription: .topics(topic),
            getOffsetsOnAssign: { partitions in
                asked.withLock { $0.formUnion(partitions) }
                if lookUp > .zero { try await Task.sleep(for: lookUp) } // a database round trip
                return stored.filter { partitions.contains($0.key) }
            })
        let first = Locked<[TopicPartition: Int64]>([:])
        let counter = Counter()
        let stream = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for try await assigned in source {
                    let (partition, subStream) = (assigned.partition, assigned.source)
                    group.addTask {
                        for try await message in subStream {
                            first.withLock { if $0[partition] == nil { $0[partition] = message.record.offset } }
                            counter.add(message.record.value)
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        try await counter.waitFor(count: (100 - 70) + (100 - 25))
        try await source.materialized.drainAndShutdown(stream)
        #expect(asked.withLock { $0 } == Set(stored.keys))
        #expect(first.withLock { $0 } == stored)
        #expect(counter.total == 105, "nothing before the stored offsets is emitted")
    }

    static func committedWithMetadata(_ kafka: EmbeddedKafka, group: String, _ partition: TopicPartition) throws -> (
        offset: Int64, metadata: String?
    )? {
        var errstr = [CChar](repeating: 0, count: 512)
        let conf = rd_kafka_conf_new()!
        for (k, v) in ["bootstrap.servers": kafka.bootstrapServers, "group.id": group, "log_level": "0"] {
            _ = rd_kafka_conf_set(conf, k, v, &errstr, errstr.count)
        }
        let consumer = try #require(rd_kafka_new(RD_KAFKA_CONSUMER, conf, &errstr, errstr.count))
        defer { rd_kafka_destroy(consumer) }
        let list = rd_kafka_topic_partition_list_new(1)!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        rd_kafka_topic_partition_list_add(list, partition.topic, partition.partition)
        #expect(rd_kafka_committed(consumer, list, 10_000) == RD_KAFKA_RESP_ERR_NO_ERROR)
        let element = list.pointee.elems[0]
        guard element.offset >= 0 else { return nil }
        let metadata = element.metadata.map {
            String(decoding: UnsafeRawBufferPointer(start: $0, count: element.metadata_size), as: UTF8.self)
        }
        return (element.offset, metadata)
    }
}
