import ReactiveKafkaTestKit
import StreamKit
import Testing

@testable import ReactiveKafka

/// Several sources over one shared consumer (Alpakka's external sources).
@Suite(.serialized) struct SharedConsumerTests {
    @Test func sourcesSharingAConsumerReadTheirOwnPartitionsAndCommit() async throws {
        let kafka = try await SourceKindsTests.seeded("shared", partitions: 4, records: 400)
        let consumer = try KafkaConsumer(SourceKindsTests.settings(kafka, group: "g-shared"))
        let low = Consumer.committableExternalSource(
            consumer, subscription: .assignment(TopicPartition("shared", 0), TopicPartition("shared", 1)))
        let high = Consumer.plainExternalSource(
            consumer, subscription: .assignment(TopicPartition("shared", 2), TopicPartition("shared", 3)))
        let lowCounter = Counter()
        let lowControl =
            low
            .map { message in
                #expect(message.record.partition < 2)
                lowCounter.add(message.record.value)
                return message.committableOffset
            }
            .to(Committer.sink(CommitterSettings().withMaxBatch(25)))
            .start()
        var highPartitions: Set<Int32> = []
        var highCount = 0
        for try await record in high {
            highPartitions.insert(record.partition)
            highCount += 1
            if highCount == 200 { break }
        }
        await high.materialized.shutdown()
        #expect(high.materialized.isShutdown)
        #expect(highPartitions == [2, 3])
        // The other source is unaffected by this one's end.
        try await lowCounter.waitFor(count: 200)
        _ = try await lowControl.drainAndShutdown()
        let committed = try await TestData.committedOffsets(
            bootstrapServers: kafka.bootstrapServers, group: "g-shared", topic: "shared", partitions: 4)
        #expect(committed == [0: 100, 1: 100])
        await consumer.shutdown()
    }

    /// A shared consumer's source whose stream ends (here `take`) keeps its partitions until what
    /// it emitted is committed downstream: letting them go at once made every commit still on its
    /// way fail as `.notAssigned` (nothing committed; read again by the next source).
    @Test func aSharedSourceEndedByTakeKeepsItsPartitionsUntilItsOffsetsAreCommitted() async throws {
        let kafka = try await SourceKindsTests.seeded("shared-take", partitions: 2, records: 1_000)
        let consumer = try KafkaConsumer(SourceKindsTests.settings(kafka, group: "g-shared-take"))
        let source = Consumer.committableExternalSource(
            consumer, subscription: .assignment(TopicPartition("shared-take", 0), TopicPartition("shared-take", 1)))
        try await StreamEndTests.takeAheadOfASlowStageAndACommitter(source)
        let committed = try await TestData.committedOffsets(
            bootstrapServers: kafka.bootstrapServers, group: "g-shared-take", topic: "shared-take", partitions: 2)
        #expect(
            committed.values.reduce(0) { $0 + max(0, $1) } == 300,
            "every offset emitted before the stream ended is committed: \(committed)")
        // Then the partitions go: another source can take them.
        let next = Consumer.plainExternalSource(consumer, subscription: .assignment(TopicPartition("shared-take", 0)))
        var iterator = next.makeAsyncIterator()
        let first = try await iterator.next()
        #expect(first != nil)
        await consumer.shutdown()
    }

    /// Offsets dropped uncommitted do not hold the partitions: once the last is gone, they go.
    @Test func aSharedSourceWhoseOffsetsAreDroppedLetsItsPartitionsGo() async throws {
        let kafka = try await SourceKindsTests.seeded("shared-drop", partitions: 1, records: 100)
        let consumer = try KafkaConsumer(SourceKindsTests.settings(kafka, group: "g-shared-drop"))
        let partition = TopicPartition("shared-drop", 0)
        let source = Consumer.committableExternalSource(consumer, subscription: .assignment(partition))
        var kept: [CommittableOffset] = []
        for try await message in source.take(10) { kept.append(message.committableOffset) }
        let assigned = { (try? await consumer.control.withConsumer { try $0.assignment() }) ?? [] }
        try await Task.sleep(for: .milliseconds(500))
        #expect(await assigned() == [partition], "offsets still held downstream keep the partition for their commit")
        kept.removeAll()
        var released = false
        let deadline = ContinuousClock.now + .seconds(5)
        while !released, ContinuousClock.now < deadline {
            released = await assigned().isEmpty
            if !released { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(released, "once the last offset is dropped uncommitted, the partition goes")
        await consumer.shutdown()
    }

    @Test func aPartitionCanBeReadByOneSourceOnly() async throws {
        let kafka = try await SourceKindsTests.seeded("overlap", partitions: 2, records: 20)
        let consumer = try KafkaConsumer(SourceKindsTests.settings(kafka, group: "g-overlap"))
        let first = Consumer.plainExternalSource(consumer, subscription: .assignment(TopicPartition("overlap", 0)))
        // The first source keeps reading (its iterator alive): ending its stream would let partition 0 go.
        var reading = first.makeAsyncIterator()
        _ = try await reading.next()
        let second = Consumer.plainExternalSource(
            consumer, subscription: .assignment(TopicPartition("overlap", 0), TopicPartition("overlap", 1)))
        do {
            for try await _ in second {}
            Issue.record("a second source on the same partition must fail")
        } catch let error as KafkaError {
            #expect(error.kind == .invalidConfiguration)
            #expect(error.message.contains("overlap-0"))
        }
        let group = Consumer.plainExternalSource(consumer, subscription: .topics("overlap"))
        await #expect(throws: KafkaError.self) { for try await _ in group {} }
        await consumer.shutdown()
        // Every source ends with the consumer.
        #expect(first.materialized.isShutdown)
        _ = reading
    }
}
