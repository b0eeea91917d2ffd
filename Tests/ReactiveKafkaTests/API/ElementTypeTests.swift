import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Testing

// The public element types of the sources, flows and sinks, pinned by name: each declaration
// below states the type a factory returns, so a factory that goes back to a tuple or leaks an
// operator's implementation type stops this file compiling.

/// A partitioned source emits `PartitionSource`s, not tuples.
private func partitioned(_ settings: ConsumerSettings<String, String>) -> some AsyncSequence<
    PartitionSource<CommittableMessage<String, String>>, any Error
> {
    Consumer.committablePartitionedSource(settings, subscription: .topics("t"))
}

/// The transactional partitioned source too.
private func transactionalPartitioned(_ settings: ConsumerSettings<String, String>) -> some AsyncSequence<
    PartitionSource<TransactionalMessage<String, String>>, any Error
> {
    Transactional.partitionedSource(settings, subscription: .topics("t"))
}

/// The offset-context sources emit `RecordWithOffset`s with their offset type.
private func withOffset(_ settings: ConsumerSettings<String, String>) -> some AsyncSequence<
    RecordWithOffset<String, String, CommittableOffset>, any Error
> {
    Consumer.sourceWithOffsetContext(settings, subscription: .topics("t"))
}

private func transactionalWithOffset(_ settings: ConsumerSettings<String, String>) -> some AsyncSequence<
    RecordWithOffset<String, String, TransactionalOffset>, any Error
> {
    Transactional.sourceWithOffsetContext(settings, subscription: .topics("t"))
}

/// The offset-context sink and flow take `MessageWithOffset`s.
private func transactionalSink(_ settings: ProducerSettings<String, String>) -> any Sink<
    MessageWithOffset<String, String, TransactionalOffset>, Void
> {
    Transactional.sinkWithOffsetContext(settings, transactionalId: "t")
}

private func transactionalFlow(_ settings: ProducerSettings<String, String>) -> any Flow<
    MessageWithOffset<String, String, TransactionalOffset>, ProducerResult<String, String, TransactionalOffset>
> {
    Transactional.flowWithOffsetContext(settings, transactionalId: "t")
}

/// At-most-once emits records, behind an opaque sequence (no compact-map type in its signature).
private func atMostOnce(_ settings: ConsumerSettings<String, String>) -> Source<
    some AsyncSequence<ConsumerRecord<String, String>, any Error> & Sendable, ConsumerControl
> {
    Consumer.atMostOnceSource(settings, subscription: .topics("t"))
}

/// Table joins emit `JoinedRecord`s.
private func joined<Table: KafkaTableView<String, Int>>(
    _ orders: Source<some AsyncSequence<String, any Error> & Sendable, Void>, _ table: Table
)
    -> some AsyncSequence<JoinedRecord<String, Int>, any Error>
{
    orders.join(table, key: { $0 })
}

private func leftJoined<Table: KafkaTableView<String, Int>>(
    _ orders: Source<some AsyncSequence<String, any Error> & Sendable, Void>, _ table: Table
)
    -> some AsyncSequence<JoinedRecord<String, Int?>, any Error>
{
    orders.leftJoin(table, key: { $0 })
}

@Suite struct ElementTypeTests {
    @Test func aRecordWithItsOffsetProducesAMessageKeepingTheOffset() throws {
        let committer = RecordingCommitter()
        let record = try ConsumerResultFactory.record(topic: "orders", partition: 1, offset: 7, key: "k", value: "v")
        let offset = try ConsumerResultFactory.committableOffset(
            topic: "orders", partition: 1, offset: 7, committer: committer)
        let pair = RecordWithOffset(record: record, offset: offset)
        let message = pair.producing(
            ProducerMessage.single(ProducerRecord(topic: "out", key: "k", value: "V"), passThrough: ()))
        #expect(message.offset.partitionOffset == offset.partitionOffset)
        guard case .single(let produced, _) = message.message else {
            Issue.record("expected the single message, got \(message.message)")
            return
        }
        #expect(produced.value == "V")
    }

    @Test func aSourceWithOffsetContextRunsThroughTheCommitter() async throws {
        let committer = RecordingCommitter()
        let pairs = try (0..<4).map { i in
            RecordWithOffset(
                record: try ConsumerResultFactory.record(topic: "orders", offset: Int64(i), key: "k", value: "v\(i)"),
                offset: try ConsumerResultFactory.committableOffset(
                    topic: "orders", offset: Int64(i), committer: committer))
        }
        try await ConsumerControlFactory.source(pairs).map(\.offset).to(Committer.sink(CommitterSettings())).run()
        #expect(committer.committedOffsets == [TopicPartition("orders", 0): 4])
    }

    @Test func theLibrarysTypesCanBeQualifiedByItsModuleName() {
        // swift-kafka-client's module `Kafka` has types of these names: with both imported, a file
        // writes `ReactiveKafka.KafkaConsumer` (README "Using it beside swift-kafka-client"). That
        // works only while no type in this module is itself named `ReactiveKafka`.
        let qualified: [Any.Type] = [
            ReactiveKafka.KafkaConsumer<String, String>.self, ReactiveKafka.KafkaProducer<String, String>.self,
            ReactiveKafka.KafkaError.self, ReactiveKafka.KafkaHeader.self,
            ReactiveKafka.KafkaTransaction<String, String>.self,
        ]
        #expect(qualified.count == 5)
        #expect("\(ReactiveKafka.KafkaError.self)" == "KafkaError")
    }
}
