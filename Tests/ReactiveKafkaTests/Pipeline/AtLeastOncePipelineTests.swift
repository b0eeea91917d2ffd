import Foundation
import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Synchronization
import Testing

/// The canonical at-least-once service on the embedded cluster (or, with
/// `make test-external`, on a Kafka cluster; topic and group names are then unique per run):
/// committableSource → map → Producer.flexiFlow → Committer.sink.
/// Outputs are read back with `RawKafka` and commits with `TestData`, so the
/// checks do not rely on the code under test.
@Suite(.serialized) struct AtLeastOncePipelineTests {
    typealias Message = CommittableMessage<String, String>
    typealias Envelope = ProducerMessage<String, String, CommittableOffset>

    static func settings(_ kafka: TestCluster, group: String) -> ConsumerSettings<String, String> {
        kafka.consumerSettings(group: group)
    }

    /// Runs the pipeline: `envelope` turns each message into what to produce;
    /// `onResult` sees each result after its records are acknowledged, before its offset is committed.
    static func pipeline(
        _ kafka: TestCluster, group: String, topic: String,
        committer: CommitterSettings = CommitterSettings().withMaxBatch(200),
        envelope: @escaping @Sendable (Message) async throws -> Envelope,
        onResult: @escaping @Sendable (ProducerResult<String, String, CommittableOffset>) -> Void
    ) -> DrainingControl<Void> {
        Consumer.committableSource(settings(kafka, group: group), subscription: .topics(topic))
            .map(envelope)
            .via(Producer.flexiFlow(kafka.producerSettings()))
            .map { result in
                onResult(result)
                return result.passThrough
            }
            .to(Committer.sink(committer))
            .start()
    }

    @Test func everyRecordIsProducedAndEveryProcessedOffsetCommitted() async throws {
        let kafka = try TestCluster()
        let groupA = kafka.name("g-a")
        let aIn = try kafka.createTopic("a-in", partitions: 4)
        let aOut = try kafka.createTopic("a-out", partitions: 3)
        let input = (0..<4000).map { (key: "k\($0 % 13)", value: "v\($0)") }
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: aIn, records: input, roundRobinOver: 4)

        let counter = Counter()
        let control = Self.pipeline(kafka, group: groupA, topic: aIn) { message in
            .single(
                ProducerRecord(topic: aOut, key: message.record.key, value: "enriched-" + message.record.value),
                passThrough: message.committableOffset)
        } onResult: { result in
            if case .single(_, let record, _) = result { counter.add(record.value!) }
        }
        try await counter.waitFor(count: input.count)
        try await control.drainAndShutdown()

        let output = try await RawKafka.readAll(topic: aOut, bootstrapServers: kafka.bootstrapServers)
        #expect(output.count == input.count, "one output per input in a run without failures")
        #expect(Set(output.compactMap(\.valueString)) == Set(input.map { "enriched-" + $0.value }))
        // Keys travel with their records.
        let keyByValue = Dictionary(uniqueKeysWithValues: input.map { ("enriched-" + $0.value, $0.key) })
        #expect(output.allSatisfy { keyByValue[$0.valueString ?? ""] == $0.keyString })
        let committed = try await TestData.committedOffsets(
            bootstrapServers: kafka.bootstrapServers, group: groupA, topic: aIn, partitions: 4)
        #expect(committed == [0: 1000, 1: 1000, 2: 1000, 3: 1000])
    }

    @Test func orderPerPartitionSurvivesTheProducerFlow() async throws {
        let kafka = try TestCluster()
        let groupB = kafka.name("g-b")
        let bIn = try kafka.createTopic("b-in", partitions: 4)
        let bOut = try kafka.createTopic("b-out", partitions: 3)
        let keys = (0..<10).map { "key-\($0)" }
        // Per key a running sequence number; keyed input lands by key hash, so each key is in one partition.
        let input = (0..<3000).map { i in (key: keys[i % keys.count] as String?, value: "\(i / keys.count)") }
        try await TestData.produce(bootstrapServers: kafka.bootstrapServers, topic: bIn, records: input)

        let counter = Counter()
        let control = Self.pipeline(kafka, group: groupB, topic: bIn) { message in
            .single(
                ProducerRecord(topic: bOut, key: message.record.key, value: message.record.value),
                passThrough: message.committableOffset)
        } onResult: { result in
            if case .single(_, let record, _) = result { counter.add(record.key! + "/" + record.value!) }
        }
        try await counter.waitFor(count: input.count)
        try await control.drainAndShutdown()

        let output = try await RawKafka.readAll(topic: bOut, bootstrapServers: kafka.bootstrapServers)
        #expect(output.count == input.count)
        // readAll orders by partition then offset; one key lives in one output partition.
        var sequences: [String: [Int]] = [:]
        for record in output { sequences[record.keyString!, default: []].append(Int(record.valueString!)!) }
        #expect(Set(sequences.keys) == Set(keys))
        for key in keys {
            #expect(sequences[key] == Array(0..<300), "\(key) is out of order in the output")
        }
    }

    @Test func multiAndPassThroughProduceAndCommit() async throws {
        let kafka = try TestCluster()
        let groupC = kafka.name("g-c")
        let cIn = try kafka.createTopic("c-in", partitions: 2)
        let cLeft = try kafka.createTopic("c-left", partitions: 2)
        let cRight = try kafka.createTopic("c-right", partitions: 2)
        let input = (0..<1500).map { (key: nil as String?, value: "m\($0)") }
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: cIn, records: input, roundRobinOver: 2)

        let counter = Counter()
        let kinds = Mutex((multi: 0, passThrough: 0))
        let control = Self.pipeline(kafka, group: groupC, topic: cIn) { message in
            let value = message.record.value
            // Every third record is filtered out: nothing produced, offset still committed.
            if Int(value.dropFirst())! % 3 == 0 { return .passThrough(message.committableOffset) }
            return .multi(
                [
                    ProducerRecord(topic: cLeft, value: "L-" + value),
                    ProducerRecord(topic: cRight, value: "R-" + value),
                ], passThrough: message.committableOffset)
        } onResult: { result in
            switch result {
            case .multi(let parts, let offset):
                kinds.withLock { $0.multi += 1 }
                #expect(parts.map(\.record.topic) == [cLeft, cRight])
                counter.add("\(offset.partitionOffset.topicPartition)@\(offset.partitionOffset.offset)")
            case .passThrough(let offset):
                kinds.withLock { $0.passThrough += 1 }
                counter.add("\(offset.partitionOffset.topicPartition)@\(offset.partitionOffset.offset)")
            case .single:
                Issue.record("no single message was sent")
            }
        }
        try await counter.waitFor(count: input.count)
        try await control.drainAndShutdown()

        let kept = input.map(\.value).filter { Int($0.dropFirst())! % 3 != 0 }
        #expect(kinds.withLock { $0 } == (multi: kept.count, passThrough: input.count - kept.count))
        let left = try await RawKafka.readAll(topic: cLeft, bootstrapServers: kafka.bootstrapServers)
        let right = try await RawKafka.readAll(topic: cRight, bootstrapServers: kafka.bootstrapServers)
        #expect(left.count == kept.count)
        #expect(right.count == kept.count)
        #expect(Set(left.compactMap(\.valueString)) == Set(kept.map { "L-" + $0 }))
        #expect(Set(right.compactMap(\.valueString)) == Set(kept.map { "R-" + $0 }))
        let committed = try await TestData.committedOffsets(
            bootstrapServers: kafka.bootstrapServers, group: groupC, topic: cIn, partitions: 2)
        #expect(committed == [0: 750, 1: 750], "filtered records are committed too")
    }

    /// `Producer.committableSink`, the pipeline's produce and commit in one sink: every record
    /// of single and multi messages is written once, and every offset is committed, filtered
    /// (pass-through) ones too, when the stream completes.
    @Test func committableSinkProducesEveryRecordAndCommitsEveryOffset() async throws {
        let kafka = try TestCluster()
        let groupD = kafka.name("g-d")
        let dIn = try kafka.createTopic("d-in", partitions: 2)
        let dOut = try kafka.createTopic("d-out", partitions: 3)
        let input = (0..<1500).map { (key: "k\($0 % 7)" as String?, value: "m\($0)") }
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: dIn, records: input, roundRobinOver: 2)

        let control = Consumer.committableSource(Self.settings(kafka, group: groupD), subscription: .topics(dIn))
            .take(input.count)
            .map { message -> Envelope in
                let value = message.record.value
                switch Int(value.dropFirst())! % 3 {
                case 0: return .passThrough(message.committableOffset)
                case 1:
                    return .single(
                        ProducerRecord(topic: dOut, key: message.record.key, value: "S-" + value),
                        passThrough: message.committableOffset)
                default:
                    return .multi(
                        [
                            ProducerRecord(topic: dOut, key: message.record.key, value: "A-" + value),
                            ProducerRecord(topic: dOut, key: message.record.key, value: "B-" + value),
                        ], passThrough: message.committableOffset)
                }
            }
            .to(
                Producer.committableSink(
                    kafka.producerSettings(), committerSettings: CommitterSettings().withMaxBatch(100))
            )
            .start()
        try await control.streamCompletion.value
        await control.shutdown()

        let expected = input.map(\.value).flatMap { value -> [String] in
            switch Int(value.dropFirst())! % 3 {
            case 0: return []
            case 1: return ["S-" + value]
            default: return ["A-" + value, "B-" + value]
            }
        }
        let output = try await RawKafka.readAll(topic: dOut, bootstrapServers: kafka.bootstrapServers)
        #expect(output.compactMap(\.valueString).sorted() == expected.sorted(), "each record written once")
        let keyByValue = Dictionary(uniqueKeysWithValues: input.map { ($0.value, $0.key) })
        #expect(output.allSatisfy { keyByValue[String(($0.valueString ?? "").dropFirst(2))] == $0.keyString })
        let committed = try await TestData.committedOffsets(
            bootstrapServers: kafka.bootstrapServers, group: groupD, topic: dIn, partitions: 2)
        #expect(committed == [0: 750, 1: 750], "every offset committed, filtered ones too")
    }

    @Test func drainMidStreamLosesNothingAndARestartCompletesTheJob() async throws {
        let kafka = try TestCluster()
        let groupD = kafka.name("g-d")
        let partitions: Int32 = 4
        let dIn = try kafka.createTopic("d-in", partitions: Int(partitions))
        let dOut = try kafka.createTopic("d-out", partitions: 4)
        let total = 20_000
        // Round-robin: record i is at partition i % 4, offset i / 4.
        let input = (0..<total).map { (key: nil as String?, value: "d\($0)") }
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: dIn, records: input, roundRobinOver: partitions)

        let envelope: @Sendable (Message) async throws -> Envelope = { message in
            // Slow enough that the drain lands mid-stream.
            if message.record.offset % 100 == 0 { try await Task.sleep(for: .milliseconds(2)) }
            return .single(
                ProducerRecord(topic: dOut, value: "out-" + message.record.value),
                passThrough: message.committableOffset)
        }
        // Long interval: only the batch size and the drain trigger commits.
        let committer = CommitterSettings().withMaxBatch(500).withMaxInterval(.seconds(60))

        let processed = Mutex<[Int32: Int64]>([:])
        let first = Counter()
        let firstRun = Self.pipeline(kafka, group: groupD, topic: dIn, committer: committer, envelope: envelope) {
            result in
            let offset = result.passThrough.partitionOffset
            processed.withLock {
                $0[offset.topicPartition.partition] = max($0[offset.topicPartition.partition] ?? -1, offset.offset)
            }
            first.add("\(offset.topicPartition)@\(offset.offset)")
        }
        try await first.waitFor(count: 6000)
        try await firstRun.drainAndShutdown()
        #expect(firstRun.isShutdown)

        let committed = try await TestData.committedOffsets(
            bootstrapServers: kafka.bootstrapServers, group: groupD, topic: dIn, partitions: partitions)
        let lastProcessed = processed.withLock { $0 }
        #expect(committed == lastProcessed.mapValues { $0 + 1 }, "the drain commits exactly what was processed")
        let committedCount = committed.values.reduce(0, +)
        #expect(committedCount >= 6000)
        #expect(committedCount < Int64(total), "the drain happened mid-stream")

        // No loss: every committed input has its output.
        let afterDrain = Set(
            try await RawKafka.readAll(topic: dOut, bootstrapServers: kafka.bootstrapServers).compactMap(\.valueString))
        var missing = 0
        for (partition, next) in committed {
            for offset in 0..<next where !afterDrain.contains("out-d\(Int(offset) * Int(partitions) + Int(partition))")
            { missing += 1 }
        }
        #expect(missing == 0, "\(missing) committed inputs have no output")

        // Restart from the committed offsets with a fresh source in the same group.
        let remaining = total - Int(committedCount)
        let second = Counter()
        let firstOffsetAfterRestart = Mutex<[Int32: Int64]>([:])
        let secondRun = Self.pipeline(kafka, group: groupD, topic: dIn, committer: committer, envelope: envelope) {
            result in
            let offset = result.passThrough.partitionOffset
            firstOffsetAfterRestart.withLock { first in
                if first[offset.topicPartition.partition] == nil {
                    first[offset.topicPartition.partition] = offset.offset
                }
            }
            second.add("\(offset.topicPartition)@\(offset.offset)")
        }
        try await second.waitFor(count: remaining)
        try await secondRun.drainAndShutdown()
        let restartedAt = firstOffsetAfterRestart.withLock { $0 }
        #expect(
            restartedAt.filter { committed[$0.key] != nil } == committed.filter { restartedAt[$0.key] != nil },
            "the restart resumes at the committed offsets")

        let output = try await RawKafka.readAll(topic: dOut, bootstrapServers: kafka.bootstrapServers).compactMap(
            \.valueString)
        let expected = Set(input.map { "out-" + $0.value })
        #expect(Set(output) == expected, "lost: \(expected.subtracting(output).count)")
        // Everything uncommitted at the drain was also unproduced, so nothing is written twice.
        #expect(output.count == total, "duplicated: \(output.count - Set(output).count)")
        let finalCommits = try await TestData.committedOffsets(
            bootstrapServers: kafka.bootstrapServers, group: groupD, topic: dIn, partitions: partitions)
        #expect(finalCommits == [0: 5000, 1: 5000, 2: 5000, 3: 5000])
    }
}
