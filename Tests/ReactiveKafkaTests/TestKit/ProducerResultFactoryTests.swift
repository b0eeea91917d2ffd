import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Testing

/// ``ProducerResultFactory``: results for each kind of message, and the stand-in producer flow.
@Suite struct ProducerResultFactoryTests {
    typealias Message = ProducerMessage<String, String, Int>

    @Test func resultsCarryEachRecordsMetadataAndThePassThrough() {
        let single = ProducerResultFactory.result(
            for: Message.single(ProducerRecord(topic: "out", partition: 2, value: "a"), passThrough: 1), offset: 7)
        #expect(single.metadata == [RecordMetadata(topic: "out", partition: 2, offset: 7)])
        #expect(single.passThrough == 1)
        let multi = ProducerResultFactory.result(
            for: Message.multi(
                [ProducerRecord(topic: "out", value: "a"), ProducerRecord(topic: "out", value: "b")], passThrough: 2),
            offset: 10)
        #expect(
            multi.metadata == [
                RecordMetadata(topic: "out", partition: 0, offset: 10),
                RecordMetadata(topic: "out", partition: 0, offset: 11),
            ])
        let passThrough = ProducerResultFactory.result(for: Message.passThrough(3))
        #expect(passThrough.metadata.isEmpty)
        #expect(passThrough.passThrough == 3)
    }

    @Test func theFlowNumbersOffsetsPerPartitionInOrder() async throws {
        let messages: [Message] = [
            .single(ProducerRecord(topic: "out", partition: 0, value: "a"), passThrough: 1),
            .multi(
                [
                    ProducerRecord(topic: "out", partition: 1, value: "b"),
                    ProducerRecord(topic: "out", partition: 0, value: "c"),
                ], passThrough: 2),
            .passThrough(3),
            .single(ProducerRecord(topic: "other", value: "d"), passThrough: 4),
            .single(ProducerRecord(topic: "out", partition: 0, value: "e"), passThrough: 5),
        ]
        let results = try await Source(finiteStream(messages)).via(ProducerResultFactory.flow(Message.self)).run(
            into: Sinks.collect())
        #expect(results.map(\.passThrough) == [1, 2, 3, 4, 5])
        #expect(
            results.map { $0.metadata.map { "\($0.topic)-\($0.partition)@\($0.offset)" } } == [
                ["out-0@0"], ["out-1@0", "out-0@1"], [], ["other-0@0"], ["out-0@2"],
            ])
    }
}
