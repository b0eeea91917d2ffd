@testable import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Testing

/// Several sources over one shared consumer (Alpakka's external sources).
@Suite(.serialized) struct SharedConsumerTests {
    @Test func sourcesSharingAConsumerReadTheirOwnPartitionsAndCommit() async throws {
        let kafka = try SourceKindsTests.seeded("shared", partitions: 4, records: 400)
        let consumer = try KafkaConsumer(SourceKindsTests.settings(kafka, group: "g-shared"))
        let low = Consumer.committableExternalSource(consumer, subscription: .assignment(TopicPartition("shared", 0), TopicPartition("shared", 1)))
        let high = Consumer.plainExternalSource(consumer, subscription: .assignment(TopicPartition("shared", 2), TopicPartition("shared", 3)))
        let lowCounter = Counter()
        let lowControl = low
            .map { message in
                #expect(message.record.partition < 2)
                lowCounter.add(message.record.value)
                return message.committableOffset
            }
            .to(Committer.sink(CommitterSettings().withMaxBatch(25)))
            .run()
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
        let committed = try TestData.committedOffsets(bootstrapServers: kafka.bootstrapServers, group: "g-shared", topic: "shared", partitions: 4)
        #expect(committed == [0: 100, 1: 100])
        await consumer.shutdown()
    }

    @Test func aPartitionCanBeReadByOneSourceOnly() async throws {
        let kafka = try SourceKindsTests.seeded("overlap", partitions: 2, records: 20)
        let consumer = try KafkaConsumer(SourceKindsTests.settings(kafka, group: "g-overlap"))
        let first = Consumer.plainExternalSource(consumer, subscription: .assignment(TopicPartition("overlap", 0)))
        // The first source keeps reading (its iterator alive): ending its stream would let partition 0 go.
        var reading = first.makeAsyncIterator()
        _ = try await reading.next()
        let second = Consumer.plainExternalSource(consumer, subscription: .assignment(TopicPartition("overlap", 0), TopicPartition("overlap", 1)))
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
