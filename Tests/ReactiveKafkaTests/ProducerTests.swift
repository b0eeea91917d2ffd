import CRdKafka
import Foundation
import ReactiveKafkaTestKit
import StreamKit
import Testing

@testable import ReactiveKafka

/// The producer stages and `KafkaProducer` against the embedded cluster; what
/// was written is checked with `RawKafka`, which bypasses the connector.
@Suite struct ProducerTests {
    typealias Message = ProducerMessage<String, String, Int>

    @Test func resultsComeInInputOrderAndPartitionOrderIsKept() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("ordered", partitions: 4)
        let messages = (0..<600).map { i in
            Message.single(ProducerRecord(topic: "ordered", key: "k\(i % 13)", value: "v\(i)"), passThrough: i)
        }
        var results: [ProducerResult<String, String, Int>] = []
        for try await result in ObservedSequence(messages).via(
            Producer.flexiFlow(kafka.producerSettings().withParallelism(64)))
        {
            results.append(result)
        }
        #expect(results.map(\.passThrough) == Array(0..<600))

        let written = try await RawKafka.readByPartition(topic: "ordered", bootstrapServers: kafka.bootstrapServers)
        #expect(written.values.map(\.count).reduce(0, +) == 600)
        for result in results {
            guard case .single(let metadata, let record, _) = result else {
                Issue.record("expected a single result, got \(result)")
                continue
            }
            // The metadata says where the record really is.
            let stored = written[metadata.partition]?.first { $0.offset == metadata.offset }
            #expect(stored?.valueString == record.value)
            #expect(stored?.keyString == record.key)
        }
        // Within a partition, records are stored in input order.
        for (_, records) in written {
            let indices = records.map { Int($0.valueString!.dropFirst())! }
            #expect(indices == indices.sorted())
        }
    }

    @Test func multiWaitsForAllItsRecordsAndPassThroughFlowsInOrder() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("multi", partitions: 3)
        let header = KafkaHeader(key: "trace", value: KafkaBytes("abc"))
        let messages: [Message] = [
            .single(
                ProducerRecord(topic: "multi", partition: 0, key: "a", value: "one", headers: [header]), passThrough: 1),
            .multi(
                (0..<3).map { ProducerRecord(topic: "multi", partition: Int32($0), value: "many-\($0)") },
                passThrough: 2),
            .passThrough(3),
            .multi([], passThrough: 4),
            .single(ProducerRecord(topic: "multi", partition: 2, key: nil, value: nil), passThrough: 5),
        ]
        var results: [ProducerResult<String, String, Int>] = []
        for try await result in ObservedSequence(messages).via(Producer.flexiFlow(kafka.producerSettings())) {
            results.append(result)
        }
        #expect(results.map(\.passThrough) == [1, 2, 3, 4, 5])
        guard results.count == 5 else { return }
        guard case .multi(let parts, _) = results[1] else {
            Issue.record("expected a multi result, got \(results[1])")
            return
        }
        #expect(parts.map(\.metadata.partition) == [0, 1, 2])
        #expect(parts.map(\.record.value) == ["many-0", "many-1", "many-2"])
        #expect(parts.allSatisfy { $0.metadata.offset >= 0 })
        guard case .passThrough(3) = results[2] else {
            Issue.record("expected a pass-through result, got \(results[2])")
            return
        }
        #expect(results[3].metadata.isEmpty)

        let written = try await RawKafka.readAll(topic: "multi", bootstrapServers: kafka.bootstrapServers)
        #expect(written.count == 5)
        let first = written.first { $0.valueString == "one" }
        #expect(first?.headers == [.init(key: "trace", value: Array("abc".utf8))])
        #expect(first?.keyString == "a")
        let tombstone = written.first { $0.value == nil }
        #expect(tombstone?.partition == 2)
        #expect(tombstone?.key == nil)
    }

    /// `KafkaBytes` written as they are are copied into librdkafka straight from the record
    /// (no serialiser call); null, empty and non-empty keys and values must all arrive as sent,
    /// and a custom bytes serialiser must still be called.
    @Test func kafkaBytesKeysAndValuesArriveExactlyAsSent() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("bytes", partitions: 1)
        try kafka.createTopic("bytes-custom", partitions: 1)
        let cases: [(key: KafkaBytes?, value: KafkaBytes?)] = [
            (KafkaBytes("k0"), KafkaBytes("v0")),
            (nil, KafkaBytes("no key")),
            (KafkaBytes("no value"), nil),
            (KafkaBytes(), KafkaBytes()),
            (nil, nil),
            (KafkaBytes([0, 255, 0]), KafkaBytes([UInt8](repeating: 7, count: 70_000))),
        ]
        let asIs = ProducerSettings<KafkaBytes, KafkaBytes>(keySerializer: .bytes, valueSerializer: .bytes)
            .withBootstrapServers(kafka.bootstrapServers).withProperty("linger.ms", "2").withCloseTimeout(.seconds(5))
        let messages = cases.enumerated().map { i, c in
            ProducerMessage<KafkaBytes, KafkaBytes, Int>.single(
                ProducerRecord(topic: "bytes", partition: 0, key: c.key, value: c.value), passThrough: i)
        }
        var passed: [Int] = []
        for try await result in ObservedSequence(messages).via(Producer.flexiFlow(asIs)) {
            passed.append(result.passThrough)
        }
        #expect(passed == Array(cases.indices))
        let written = try await RawKafka.readAll(topic: "bytes", bootstrapServers: kafka.bootstrapServers).sorted {
            $0.offset < $1.offset
        }
        #expect(written.map(\.key) == cases.map { $0.key?.array })
        #expect(written.map(\.value) == cases.map { $0.value?.array })

        // Same types, another serialiser: it is called for every key and value.
        let reversed = Serializer<KafkaBytes> { .array($0.array.reversed()) }
        let custom = ProducerSettings<KafkaBytes, KafkaBytes>(keySerializer: reversed, valueSerializer: reversed)
            .withBootstrapServers(kafka.bootstrapServers).withProperty("linger.ms", "2").withCloseTimeout(.seconds(5))
        let customMessages = [
            ProducerMessage<KafkaBytes, KafkaBytes, Int>.single(
                ProducerRecord(topic: "bytes-custom", partition: 0, key: KafkaBytes("ab"), value: KafkaBytes("xyz")),
                passThrough: 0)
        ]
        for try await _ in ObservedSequence(customMessages).via(Producer.flexiFlow(custom)) {}
        let customWritten = try await RawKafka.readAll(topic: "bytes-custom", bootstrapServers: kafka.bootstrapServers)
        #expect(customWritten.map(\.keyString) == ["ba"])
        #expect(customWritten.map(\.valueString) == ["zyx"])
    }

    @Test func upstreamIsNotPulledBeyondTheParallelismBound() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("bounded", partitions: 2)
        let tracker = InFlightTracker()
        let messages = (0..<300).map { i in
            Message.single(ProducerRecord(topic: "bounded", value: "v\(i)"), passThrough: i)
        }
        var count = 0
        for try await _ in ObservedSequence(messages, onPull: { _ in tracker.pulled() })
            .via(Producer.flexiFlow(kafka.producerSettings().withParallelism(3)))
        {
            tracker.received()
            count += 1
        }
        #expect(count == 300)
        // At most 3 unacknowledged, and at most 2 × 3 pulled and not yet taken downstream
        // (acknowledged results may wait behind an earlier message).
        #expect(tracker.max <= 6)
        #expect(tracker.max >= 2, "the stage should pipeline, not produce one at a time")
    }

    @Test func aFullProducerQueueSuspendsInsteadOfFailing() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("tiny-queue", partitions: 3)
        let settings = kafka.producerSettings().withProperty("queue.buffering.max.messages", "10")
        let messages = (0..<1500).map { i in
            Message.single(ProducerRecord(topic: "tiny-queue", value: "v\(i)"), passThrough: i)
        }
        var passThroughs: [Int] = []
        for try await result in ObservedSequence(messages).via(Producer.flexiFlow(settings)) {
            passThroughs.append(result.passThrough)
        }
        #expect(passThroughs == Array(0..<1500))
        let written = try await RawKafka.readAll(topic: "tiny-queue", bootstrapServers: kafka.bootstrapServers)
        #expect(Set(written.compactMap(\.valueString)) == Set((0..<1500).map { "v\($0)" }))
        #expect(written.count == 1500)
    }

    @Test func aFlowWhoseUpstreamIsIdleHoldsNoQueueSpace() async throws {
        // The flow's delivered records are freed by its own task (on its thread) while it
        // produces; when its upstream goes quiet they must still be freed, or a producer
        // sharing the queue would wait for space forever.
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("idle-upstream", partitions: 2)
        let settings = kafka.producerSettings().withProperty("queue.buffering.max.messages", "10")
        let producer = try KafkaProducer(settings)
        let (upstream, feed) = AsyncStream<Message>.makeStream()
        let (delivered, deliveredFeed) = AsyncStream<Int>.makeStream()
        let flow = Task {
            var count = 0
            for try await result in Source(upstream).via(Producer.flexiFlow(settings, producer: producer)) {
                count += 1
                deliveredFeed.yield(result.passThrough)
            }
            return count
        }
        for i in 0..<10 {
            feed.yield(.single(ProducerRecord(topic: "idle-upstream", value: "flow\(i)"), passThrough: i))
        }
        var iterator = delivered.makeAsyncIterator()
        for _ in 0..<10 { _ = await iterator.next() }
        // The upstream stays open and idle: 30 more records through the same 10-message queue.
        try await withTimeout(seconds: 20) {
            for i in 0..<30 {
                _ = try await producer.send(ProducerRecord(topic: "idle-upstream", value: "direct\(i)"))
            }
        }
        feed.finish()
        #expect(try await valueWithin(flow, seconds: 10) == 10)
        await producer.close()
        let written = try await RawKafka.readAll(topic: "idle-upstream", bootstrapServers: kafka.bootstrapServers)
        #expect(written.count == 40)
    }

    @Test func recordsCollectedWhileTheQueueIsFullArriveAlthoughTheUpstreamGoesIdle() async throws {
        // The pump collects records and produces them when it stops; with no room in
        // librdkafka's queue at that moment they must still go out once room is freed,
        // without the upstream (open, idle) waking the pump.
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("full-then-idle", partitions: 2)
        let settings = kafka.producerSettings().withProperty("queue.buffering.max.messages", "5").withParallelism(100)
        let (upstream, feed) = AsyncStream<Message>.makeStream()
        let (delivered, deliveredFeed) = AsyncStream<Int>.makeStream()
        let flow = Task {
            var count = 0
            for try await result in Source(upstream).via(Producer.flexiFlow(settings)) {
                count += 1
                deliveredFeed.yield(result.passThrough)
            }
            return count
        }
        for i in 0..<40 { feed.yield(.single(ProducerRecord(topic: "full-then-idle", value: "v\(i)"), passThrough: i)) }
        let received = try await withTimeout(seconds: 20) {
            var iterator = delivered.makeAsyncIterator()
            var received: [Int] = []
            for _ in 0..<40 { if let i = await iterator.next() { received.append(i) } }
            return received
        }
        #expect(received == Array(0..<40))
        feed.finish()
        #expect(try await valueWithin(flow, seconds: 10) == 40)
    }

    @Test func partitionOrderHoldsAcrossCollectedAndSingleProducedRecords() async throws {
        // Records without headers or timestamp are collected and produced together, the others
        // one by one; records with and without an explicit partition are collected separately.
        // Per partition, Kafka must still store them in input order.
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("mixed", partitions: 3)
        let messages = (0..<900).map { i -> Message in
            let value = "v\(i)"
            let record: ProducerRecord<String, String> =
                switch i % 6 {
                case 0: ProducerRecord(topic: "mixed", partition: Int32(i % 3), value: value)
                case 1: ProducerRecord(topic: "mixed", key: "k\(i % 5)", value: value)
                case 2:
                    ProducerRecord(
                        topic: "mixed", partition: Int32(i % 3), value: value,
                        timestamp: KafkaTimestamp(milliseconds: 1_700_000_000_000 + Int64(i)))
                case 3:
                    ProducerRecord(
                        topic: "mixed", partition: Int32(i % 3), value: value,
                        headers: [KafkaHeader(key: "h", value: KafkaBytes("\(i)"))])
                case 4: ProducerRecord(topic: "mixed", key: "k\(i % 5)", value: value)
                default: ProducerRecord(topic: "mixed", partition: Int32(i % 3), key: "k", value: value)
                }
            return .single(record, passThrough: i)
        }
        var results: [ProducerResult<String, String, Int>] = []
        for try await result in ObservedSequence(messages).via(
            Producer.flexiFlow(kafka.producerSettings().withParallelism(200)))
        {
            results.append(result)
        }
        #expect(results.map(\.passThrough) == Array(0..<900))
        let written = try await RawKafka.readByPartition(topic: "mixed", bootstrapServers: kafka.bootstrapServers)
        #expect(written.values.map(\.count).reduce(0, +) == 900)
        for (_, records) in written {
            let indices = records.map { Int($0.valueString!.dropFirst())! }
            #expect(indices == indices.sorted())
        }
        for result in results {
            guard case .single(let metadata, let record, let i) = result else { continue }
            let stored = written[metadata.partition]?.first { $0.offset == metadata.offset }
            #expect(stored?.valueString == record.value)
            if i % 6 == 2 { #expect(stored?.timestamp == 1_700_000_000_000 + Int64(i)) }
            if i % 6 == 3 { #expect(stored?.headers.count == 1) }
        }
    }

    @Test func aRecordForAMissingPartitionFailsTheStreamAfterTheResultsBeforeIt() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("one-partition", partitions: 1)
        let messages: [Message] = [
            .single(ProducerRecord(topic: "one-partition", partition: 0, value: "ok-1"), passThrough: 1),
            .single(ProducerRecord(topic: "one-partition", partition: 0, value: "ok-2"), passThrough: 2),
            .single(ProducerRecord(topic: "one-partition", partition: 7, value: "lost"), passThrough: 3),
            .single(ProducerRecord(topic: "one-partition", partition: 0, value: "after"), passThrough: 4),
        ]
        var emitted: [Int] = []
        let error = await #expect(throws: KafkaError.self) {
            for try await result in ObservedSequence(messages).via(
                Producer.flexiFlow(kafka.producerSettings().withParallelism(1)))
            {
                emitted.append(result.passThrough)
            }
        }
        #expect(emitted == [1, 2])
        #expect(error?.kind == .deliveryFailed)
        #expect(error?.message.contains("one-partition") == true)
        #expect(error.flatMap { $0.code.flatMap(KafkaError.codeName) } == "_UNKNOWN_PARTITION")
    }

    @Test func aNonRetriableBrokerErrorFailsTheStreamWithTheBrokersReason() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("refused", partitions: 1)
        try kafka.failNextRequests(.produce, with: [.topicAuthorizationFailed])
        let messages: [Message] = [.single(ProducerRecord(topic: "refused", value: "x"), passThrough: 1)]
        let error = await #expect(throws: KafkaError.self) {
            for try await _ in ObservedSequence(messages).via(Producer.flexiFlow(kafka.producerSettings())) {}
        }
        #expect(error?.kind == .deliveryFailed)
        #expect(error?.code == KafkaErrorCode.topicAuthorizationFailed.rawValue)
        #expect(error?.message.contains("refused-0") == true)
    }

    @Test func aThrowingSerializerFailsWithASerializationErrorAfterEarlierResults() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("ser", partitions: 1)
        struct Refused: Error {}
        let settings = ProducerSettings<String, String>(
            keySerializer: .string,
            valueSerializer: Serializer { value in
                if value == "bad" { throw Refused() }
                return .utf8(value)
            }
        ).withBootstrapServers(kafka.bootstrapServers).withProperty("linger.ms", "2")
        let messages: [Message] = ["a", "b", "bad", "c"].enumerated().map { i, v in
            .single(ProducerRecord(topic: "ser", value: v), passThrough: i)
        }
        var emitted: [Int] = []
        let error = await #expect(throws: KafkaError.self) {
            for try await result in ObservedSequence(messages).via(Producer.flexiFlow(settings)) {
                emitted.append(result.passThrough)
            }
        }
        #expect(emitted == [0, 1])
        #expect(error?.kind == .serialization)
        #expect(error?.message.contains("ser") == true)
    }

    @Test func badSettingsAreTypedErrors() async throws {
        let settings = ProducerSettings<String, String>(keySerializer: .string, valueSerializer: .string)
        #expect {
            _ = try KafkaProducer(settings.withProperty("acks", "sometimes"))
        } throws: { error in
            let e = error as! KafkaError
            return e.kind == .invalidConfiguration && e.message.contains("acks")
        }
        let messages: [Message] = [.passThrough(1)]
        await #expect {
            for try await _ in ObservedSequence(messages).via(
                Producer.flexiFlow(settings.withProperty("no.such.thing", "1")))
            {}
        } throws: { error in
            (error as? KafkaError)?.kind == .invalidConfiguration && "\(error)".contains("no.such.thing")
        }
        await #expect {
            for try await _ in ObservedSequence(messages).via(Producer.flexiFlow(settings.withParallelism(0))) {}
        } throws: { error in
            (error as? KafkaError)?.kind == .invalidConfiguration && "\(error)".contains("parallelism")
        }
    }

    @Test func plainSinkCompletesOnceEveryRecordIsWritten() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("sink", partitions: 2)
        let records = (0..<1000).map { ProducerRecord<String, String>(topic: "sink", key: "k\($0)", value: "v\($0)") }
        try await Source(ObservedSequence(records)).run(into: Producer.plainSink(kafka.producerSettings()))
        // Everything is acknowledged when the sink returns: no waiting needed.
        let written = try await RawKafka.readAll(topic: "sink", bootstrapServers: kafka.bootstrapServers)
        #expect(written.count == 1000)
        #expect(Set(written.compactMap(\.valueString)) == Set((0..<1000).map { "v\($0)" }))
    }

    @Test func aSharedProducerServesSeveralStagesAndSendsOneRecord() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("shared", partitions: 2)
        let settings = kafka.producerSettings()
        let producer = try KafkaProducer(settings)
        async let a: Void = Source(
            ObservedSequence((0..<200).map { ProducerRecord<String, String>(topic: "shared", value: "a\($0)") })
        )
        .run(into: Producer.plainSink(settings, producer: producer))
        async let b: Void = Source(
            ObservedSequence((0..<200).map { ProducerRecord<String, String>(topic: "shared", value: "b\($0)") })
        )
        .run(into: Producer.plainSink(settings, producer: producer))
        _ = try await (a, b)
        let metadata = try await producer.send(ProducerRecord(topic: "shared", partition: 1, key: "k", value: "single"))
        #expect(metadata.topic == "shared")
        #expect(metadata.partition == 1)
        await producer.close()

        await #expect {
            _ = try await producer.send(ProducerRecord(topic: "shared", value: "late"))
        } throws: { ($0 as? KafkaError)?.kind == .shutDown }

        let written = try await RawKafka.readAll(topic: "shared", bootstrapServers: kafka.bootstrapServers)
        #expect(written.count == 401)
        let single = written.first { $0.valueString == "single" }
        #expect(single?.partition == 1)
        #expect(single?.offset == metadata.offset)
    }

    @Test func closingWithUndeliverableRecordsReportsThemAsErrors() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("down", partitions: 1)
        let producer = try KafkaProducer(kafka.producerSettings())
        _ = try await producer.send(ProducerRecord(topic: "down", value: "before"))
        try kafka.brokerDown(1)
        // Enqueue synchronously (what send does before it waits) so the record is surely in flight at close.
        let direct = producer.engine.direct
        let token = direct.reserve()
        let enqueued = try producer.engine.tryProduce(
            topic: "down", partition: nil, key: nil, value: .utf8("stuck"), headers: [], timestamp: nil,
            opaque: ProducerOpaque(receiver: 0, token: token))
        #expect(enqueued == RD_KAFKA_RESP_ERR_NO_ERROR)
        await producer.close(timeout: .milliseconds(300))
        switch await direct.wait(token) {
        case .success(let report):
            #expect(!report.succeeded)
            #expect(report.failure(topic: "down").kind == .shutDown)
        case .failure(let error):
            #expect(error.kind == .shutDown)
        }
        await #expect {
            _ = try await producer.send(ProducerRecord(topic: "down", value: "late"))
        } throws: { ($0 as? KafkaError)?.kind == .shutDown }
    }

    @Test func aFatalErrorFailsTheRunningFlowAndLaterSends() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("fatal", partitions: 1)
        let settings = kafka.producerSettings().withProperty("enable.idempotence", "true")
        let producer = try KafkaProducer(settings)
        _ = try await producer.send(ProducerRecord(topic: "fatal", value: "before"))
        // An upstream that never ends, so only the fatal error can end the flow.
        let (upstream, continuation) = AsyncStream<Message>.makeStream()
        continuation.yield(.single(ProducerRecord(topic: "fatal", value: "one"), passThrough: 1))
        let flow = Task {
            var seen: [Int] = []
            do {
                for try await result in upstream.via(Producer.flexiFlow(settings, producer: producer)) {
                    seen.append(result.passThrough)
                    if seen.count == 1 {
                        _ = rd_kafka_test_fatal_error(
                            producer.engine.handle, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                            "injected by the test")
                        continuation.yield(.single(ProducerRecord(topic: "fatal", value: "two"), passThrough: 2))
                    }
                }
                return (seen, nil as KafkaError?)
            } catch {
                return (seen, error as? KafkaError)
            }
        }
        let (seen, error) = await flow.value
        continuation.finish()
        #expect(seen == [1])
        #expect(error?.kind == .fatal)
        await #expect {
            _ = try await producer.send(ProducerRecord(topic: "fatal", value: "after"))
        } throws: { ($0 as? KafkaError)?.kind == .fatal }
        await producer.close()
    }
}
