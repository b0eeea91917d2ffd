import CRdKafka
import Foundation
import ReactiveKafka
import ReactiveKafkaTestKit
import Testing

/// librdkafka refuses to seek a partition until it has started fetching it (`_STATE`); the
/// connector makes such a seek at the partition's first fetched record or end-of-partition event
/// (see ConsumerEngine+Seeking). These are the edges of that: what it must not defer, what it
/// must resolve when asked, and a partition whose fetching never starts.
@Suite struct DeferredSeekTests {
    /// Seeks each newly assigned partition to its end, at once.
    final class SeekToEndHandler: PartitionAssignmentHandler {
        let errors = Locked<[String]>([])
        let assigned = Locked(false)

        func onAssign(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {
            do { try consumer.seekToEnd(partitions) } catch { errors.withLock { $0.append("\(error)") } }
            assigned.withLock { $0 = true }
        }
        func onRevoke(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {}
        func onLost(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {}
        func onStop(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {}
    }

    /// The end is the end when the seek was asked: a seek made later, at the first fetched record,
    /// must not skip records written in between.
    @Test func aSeekToTheEndInOnAssignReadsEveryRecordWrittenAfterIt() async throws {
        let kafka = try await SourceKindsTests.seeded("defer-end", partitions: 1, records: 100)
        let handler = SeekToEndHandler()
        let source = Consumer.plainSource(
            SourceKindsTests.settings(kafka, group: "g-defer-end"),
            subscription: .topics("defer-end").withPartitionAssignmentHandler(handler))
        let read = Task {
            var offsets: [Int64] = []
            for try await record in source {
                offsets.append(record.offset)
                if offsets.count == 10 { break }
            }
            return offsets
        }
        #expect(try await Eventually.within(.seconds(30)) { handler.assigned.withLock { $0 } })
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "defer-end",
            records: (0..<10).map { (key: nil, value: "late-\($0)") }, partition: 0)
        let offsets = try await withTimeout(seconds: 30) { try await read.value }
        await source.materialized.shutdown()
        #expect(handler.errors.withLock { $0 } == [])
        #expect(offsets == Array(100..<110))
    }

    /// A partition another member (or nobody) reads has no fetching to wait for: the seek fails
    /// as it always did, instead of waiting until that partition comes to this consumer.
    @Test func aSeekOfAPartitionThisConsumerDoesNotReadFails() async throws {
        let kafka = try await SourceKindsTests.seeded("defer-foreign", partitions: 2, records: 20)
        let source = Consumer.plainSource(
            SourceKindsTests.settings(kafka, group: "g-defer-foreign"),
            subscription: .assignment(TopicPartition("defer-foreign", 0)))
        let read = Task { for try await _ in source {} }
        #expect(
            try await Eventually.within(.seconds(30)) {
                (try? await source.materialized.withConsumer { try $0.assignment() })?.isEmpty == false
            })
        let error = await #expect(throws: KafkaError.self) {
            try await source.materialized.withConsumer { consumer in
                try consumer.seek([TopicPartition("defer-foreign", 1): 0])
            }
        }
        #expect(error?.message.contains("defer-foreign-1") == true)
        read.cancel()
        await source.materialized.shutdown()
    }

    /// With `auto.offset.reset` `error` and no committed offset librdkafka never starts reading
    /// the partition: a manual-offset source's seek there fails the stream with what to change,
    /// instead of leaving the partition unread.
    @Test func aPartitionThatCannotStartFailsAManualOffsetSourceWithWhatToChange() async throws {
        let kafka = try await SourceKindsTests.seeded("defer-reset", partitions: 1, records: 20)
        let source = Consumer.plainPartitionedManualOffsetSource(
            SourceKindsTests.settings(kafka, group: "g-defer-reset").withProperty("auto.offset.reset", "error"),
            subscription: .topics("defer-reset"),
            getOffsetsOnAssign: { partitions in Dictionary(uniqueKeysWithValues: partitions.map { ($0, Int64(5)) }) })
        let outcome = try await withTimeout(seconds: 30) { () async -> Result<Int, any Error> in
            do {
                var read = 0
                try await withThrowingTaskGroup(of: Int.self) { group in
                    for try await assigned in source {
                        let subStream = assigned.source
                        group.addTask {
                            var n = 0
                            for try await _ in subStream { n += 1 }
                            return n
                        }
                    }
                    for try await n in group { read += n }
                }
                return .success(read)
            } catch {
                return .failure(error)
            }
        }
        await source.materialized.shutdown()
        guard case .failure(let error) = outcome else {
            Issue.record("the source ended without an error: \(outcome)")
            return
        }
        let kafkaError = try #require(error as? KafkaError)
        #expect(kafkaError.kind == .invalidConfiguration)
        #expect(kafkaError.message.contains("auto.offset.reset"))
    }
}
