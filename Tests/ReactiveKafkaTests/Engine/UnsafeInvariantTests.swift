import CRdKafka
import Foundation
import Logging
import ReactiveKafkaTestKit
import StreamKit
import Synchronization
import Testing

@testable import ReactiveKafka

/// Each unchecked construct in Sources/ (`unowned(unsafe)`, `unsafelyUnwrapped`, `Unmanaged`,
/// `@exclusivity(unchecked)`, `nonisolated(unsafe)`) rests on an invariant stated next to it.
/// Each test here drives the path where its invariant is what keeps memory valid (the object
/// goes away while something could still reach it), so that breaking the invariant is a
/// use-after-free, an out-of-bounds read or a race that `make sanitize-address` /
/// `make sanitize-thread` reports, and checks what the path must produce. (The callback
/// target's two are the exception: librdkafka 2.0.2 calls nothing after the engine's close, so
/// their tests guard the lifetimes around that instead; see there.)
@Suite(.serialized) struct UnsafeInvariantTests {
    final class WeakObject: @unchecked Sendable {
        weak var object: AnyObject?
        var isGone: Bool { object == nil }
    }

    static func settings<K, V>(_ kafka: EmbeddedKafka, group: String, key: Deserializer<K>, value: Deserializer<V>)
        -> ConsumerSettings<K, V>
    {
        ConsumerSettings(keyDeserializer: key, valueDeserializer: value)
            .withBootstrapServers(kafka.bootstrapServers)
            .withGroupId(group)
            .withProperty("auto.offset.reset", "earliest")
            .withProperties(EmbeddedKafka.fastGroupProperties)
    }

    static func eventually(within limit: Duration, _ condition: () -> Bool) async throws -> Bool {
        try await StreamEndTests.eventually(within: limit, condition)
    }

    /// Threads of this process named `name` (Linux: /proc/self/task/*/comm).
    static func threads(named name: String) -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.filter { task in
            (try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) == name
        }.count
    }

    // MARK: LentChunk (MessageBatch.swift): unowned(unsafe) batch and partition

    /// `LentChunk` lends a record's batch and partition unretained for one element-factory
    /// call; the element must retain what it keeps. Here the records (zero-copy key and value
    /// views into the batch, and committable offsets referring to the partition) outlive
    /// the chunk, the iterator, the source and the engine's own references (its buffer and
    /// its partition objects, dropped when its thread ends), so they are the batches' and
    /// partitions' only owners: were either taken unretained, reading them would be a
    /// use-after-free.
    @Test func recordsAndOffsetsOutliveTheChunkTheyWereLentFrom() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("ui-lent", partitions: 2)
        let padding = String(repeating: "p", count: 200)
        let input = (0..<120).map { (key: "k\($0)" as String?, value: "v\($0)-\(padding)") }
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "ui-lent", records: input, roundRobinOver: 2)

        let messages = try await consumeCommittable(kafka, count: input.count)
        // The engine's thread drops its partition objects right after the close it reported.
        try await Task.sleep(for: .milliseconds(200))

        #expect(messages.count == input.count)
        var expected = Set(input.map { "\($0.key!)=\($0.value)" })
        var batch = CommittableOffsetBatch()
        var highest: [TopicPartition: Int64] = [:]
        for message in messages {
            let record = message.record
            let key = String(decoding: record.key, as: UTF8.self)
            let value = String(decoding: record.value, as: UTF8.self)
            #expect(
                expected.remove("\(key)=\(value)") != nil,
                "record \(record.partition)@\(record.offset) read as \(key)=\(value.prefix(12))…")
            #expect(record.topic == "ui-lent")
            let offset = message.committableOffset
            #expect(offset.partitionOffset.topicPartition == record.topicPartition)
            #expect(offset.partitionOffset.offset == record.offset)
            highest[record.topicPartition] = max(highest[record.topicPartition] ?? -1, record.offset)
            batch.add(offset)
        }
        #expect(expected.isEmpty)
        #expect(batch.offsets == highest.mapValues { $0 + 1 })
        #expect(batch.offsets == [TopicPartition("ui-lent", 0): 60, TopicPartition("ui-lent", 1): 60])
    }

    /// Reads `count` committable messages in small batches (many chunks, each let go as the
    /// iterator moves on), shuts the consumer down and lets go of the source.
    @inline(never)
    private func consumeCommittable(_ kafka: EmbeddedKafka, count: Int) async throws -> [CommittableMessage<
        KafkaBytes, KafkaBytes
    >] {
        let settings = Self.settings(kafka, group: "g-ui-lent", key: .bytes, value: .bytes).withMaxBatchSize(7)
        let source = Consumer.committableSource(settings, subscription: .topics("ui-lent"))
        var messages: [CommittableMessage<KafkaBytes, KafkaBytes>] = []
        for try await message in source {
            messages.append(message)
            if messages.count == count { break }
        }
        await source.materialized.shutdown()
        return messages
    }

    // MARK: MessageBatch.messages: unsafelyUnwrapped (ConsumerRecord.swift, KafkaConsumerSequence.swift)

    /// A record reads its message as `batch.messages[index].unsafelyUnwrapped`: every index
    /// below the batch's count is set at init and never cleared. Every record of batches of
    /// several records (first, middle and last index) reads its own message's headers, from
    /// several tasks at once, after the consumer is gone (the batches are the records' alone):
    /// a wrong or stale index reads another record's headers or past the allocation.
    @Test func everyRecordOfABatchReadsItsOwnMessageAfterTheConsumerIsGone() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("ui-headers", partitions: 1)
        let records = (0..<150).map { i in
            ProducerRecord<String, String>(
                topic: "ui-headers", partition: 0, key: "k\(i)", value: "v\(i)",
                headers: [KafkaHeader(key: "index", value: KafkaBytes("\(i)")), KafkaHeader(key: "none", value: nil)])
        }
        try await Source.from(records).run(into: Producer.plainSink(kafka.producerSettings()))

        let (read, engine) = try await consumePlain(
            kafka, topic: "ui-headers", group: "g-ui-headers", count: records.count, maxBatchSize: 50)
        #expect(
            try await Self.eventually(within: .seconds(10)) { engine.isGone },
            "the consumer engine outlived its stream and control")
        #expect(read.count == records.count)

        let mismatches = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var wrong = 0
                    for record in read {
                        let index = String(record.value.dropFirst())
                        if record.headers != [
                            KafkaHeader(key: "index", value: KafkaBytes(index)), KafkaHeader(key: "none", value: nil),
                        ] {
                            wrong += 1
                        }
                        if record.topic != "ui-headers" || record.key != "k\(index)" { wrong += 1 }
                    }
                    return wrong
                }
            }
            return await group.reduce(0, +)
        }
        #expect(mismatches == 0)
        #expect(read.map(\.offset) == Array(0..<150).map(Int64.init))
    }

    /// Reads `count` records with a plain source, shuts it down and lets go of it; returns
    /// them and a weak reference to the source's engine.
    @inline(never)
    private func consumePlain(
        _ kafka: EmbeddedKafka, topic: String, group: String, count: Int, maxBatchSize: Int,
        statistics: Duration? = nil, logger: Logger = Logger(label: "test.unsafe"),
        onEach: (ConsumerControl) -> Void = { _ in }
    ) async throws -> ([ConsumerRecord<String, String>], WeakObject) {
        var settings = Self.settings(kafka, group: group, key: .string, value: .string).withMaxBatchSize(maxBatchSize)
        if let statistics { settings = settings.withStatisticsInterval(statistics) }
        let source = Consumer.plainSource(settings, subscription: .topics(topic), logger: logger)
        let weak = WeakObject()
        var read: [ConsumerRecord<String, String>] = []
        for try await record in source {
            if weak.object == nil { weak.object = try source.materialized.subStreamEngine() }
            read.append(record)
            onEach(source.materialized)
            if read.count == count { break }
        }
        await source.materialized.shutdown()
        return (read, weak)
    }

    // MARK: CallbackTarget (ConsumerEngine.swift): Unmanaged opaque and engine

    /// librdkafka's callbacks reach the engine through an unretained `CallbackTarget` (kept
    /// alive by the handle's owner until the handle is destroyed) holding an unretained engine
    /// (cleared when the engine's thread has closed). The lifetimes this relies on: the engine
    /// is freed while records still keep its handle alive, callbacks ran while it lived (here
    /// statistics), errors the handle raises afterwards (the broker goes down) reach no engine,
    /// and the handle is destroyed only once the last record is gone, with the records intact
    /// until then.
    ///
    /// What librdkafka 2.0.2 does on this path (checked under AddressSanitizer by removing the
    /// owner's hold on the target: no fault): after a clean close the group queue is no longer
    /// served, and `rd_kafka_destroy` purges what is queued without calling back, so no
    /// callback comes after the engine's close; the target's longer life is a safeguard against
    /// a librdkafka that would serve them in `rd_kafka_destroy`'s consumer close.
    @Test func callbacksAfterTheEngineIsFreedFindTheTargetAliveAndNoEngine() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("ui-callbacks", partitions: 2)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "ui-callbacks",
            records: (0..<60).map { (key: nil as String?, value: "v\($0)") }, roundRobinOver: 2)
        let logs = CapturedLogs()
        let logger = Logger(label: "test.unsafe.callbacks") { _ in CapturingLogHandler(logs: logs) }
        let sawStatistics = Atomic<Bool>(false)
        var (read, engine) = try await consumePlain(
            kafka, topic: "ui-callbacks", group: "g-ui-callbacks", count: 60, maxBatchSize: 16,
            statistics: .milliseconds(10), logger: logger
        ) { control in
            if control.metrics.statisticsJSON != nil { sawStatistics.store(true, ordering: .relaxed) }
        }
        #expect(
            try await Self.eventually(within: .seconds(10)) { engine.isGone },
            "the consumer engine outlived its stream and control")
        let loggedBeforeFree = logs.messages.count

        // The handle lives on in the records' batches: make librdkafka raise errors for it.
        try kafka.brokerDown(1)
        try await Task.sleep(for: .milliseconds(300))
        #expect(
            Set(read.map(\.value)) == Set((0..<60).map { "v\($0)" }),
            "records read while their handle outlives the engine")
        read.removeAll()
        // The last batch is gone: the handle's owner destroys it (and serves its queued
        // callbacks) on a thread of its own. Give it time to finish within this test.
        _ = try await Self.eventually(within: .seconds(10)) { Self.threads(named: "rkafka-destroy") == 0 }
        try kafka.brokerUp(1)

        let statisticsSeen = sawStatistics.load(ordering: .relaxed)
        #expect(statisticsSeen, "the statistics callback reached the engine while it ran")
        let afterFree = logs.messages.dropFirst(loggedBeforeFree)
        #expect(
            !afterFree.contains { $0.message.contains("kafka error") },
            "a callback reached an engine that was already freed")
    }

    /// A consumer whose creation fails after its callbacks and wake-up descriptor were given to
    /// librdkafka (here the subscription: no group) clears the engine from the callback target
    /// and turns the queues' wake-ups off before it goes, so that the handle, destroyed later on
    /// its own thread, can neither call into the freed engine nor write to its closed descriptor
    /// (whose number a new descriptor may take: checked below). The window is short (the handle
    /// is destroyed at once): with the wake-ups left on, librdkafka 2.0.2 posted nothing in it
    /// in the runs tried, so this guards the failure itself and the descriptor, not every race.
    @Test func aConsumerWhoseCreationFailsLeavesNothingLibrdkafkaCanReach() async throws {
        let kafka = try EmbeddedKafka()
        let configuration = ConsumerEngine.Configuration(
            properties: ["bootstrap.servers": kafka.bootstrapServers, "log_level": "0"],
            subscription: .topics("ui-no-group"), groupId: nil,
            maxBufferedBytes: 1 << 20, maxBatchSize: 100,
            commitTimeout: .seconds(5), commitTimeWarning: .seconds(1), closeTimeout: .seconds(5),
            brokerUnreachableTimeout: nil, rebalanceSafeCommitTimeout: nil, partitionHandlerWarning: .seconds(1),
            logger: Logger(label: "test.unsafe.failed-init"))
        var failure: KafkaError?
        do {
            _ = try ConsumerEngine(configuration: configuration, statisticsInterval: .milliseconds(1))
        } catch {
            failure = error
        }
        #expect(
            failure?.message.contains("subscribing to") == true,
            "creation failed at the subscription: \(String(describing: failure))")
        // Likely the number the engine's eventfd had: librdkafka must not write to it.
        let reused = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        defer { close(reused) }
        _ = try await Self.eventually(within: .seconds(10)) { Self.threads(named: "rkafka-destroy") == 0 }
        try await Task.sleep(for: .milliseconds(100))
        var value: UInt64 = 0
        let n = read(reused, &value, 8)
        let readError = errno
        #expect(
            n < 0 && readError == EAGAIN,
            "librdkafka wrote to a descriptor the failed consumer had closed (read \(n), value \(value))")
    }

    // MARK: KafkaConsumerSequence.Iterator: engine and current unsafelyUnwrapped

    /// The iterator's per-record path reads `engine.unsafelyUnwrapped` and
    /// `current.unsafelyUnwrapped` only after finding a record in hand: an iterator whose
    /// source never started (no engine) or whose stream ended (no chunk) must answer nil
    /// again and again without reaching them.
    @Test func anIteratorWithoutEngineOrChunkAnswersNilWithoutReadingThem() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("ui-iterator", partitions: 1)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "ui-iterator",
            records: (0..<10).map { (key: nil as String?, value: $0 == 4 ? "bad" : "v\($0)") }, partition: 0)

        // Stopped before it started: no engine, ever.
        let stopped = Consumer.plainSource(
            Self.settings(kafka, group: "g-ui-stopped", key: .string, value: .string),
            subscription: .topics("ui-iterator"))
        stopped.materialized.stop()
        var neverStarted = stopped.makeAsyncIterator()
        #expect(try await neverStarted.next() == nil)
        #expect(try await neverStarted.next() == nil)
        #expect(try stopped.materialized.subStreamEngine() == nil)

        // A record that fails to deserialise ends the stream mid-chunk: no chunk in hand after it.
        let strict = Deserializer<String> { bytes in
            let text = String(decoding: bytes ?? KafkaBytes(), as: UTF8.self)
            guard text != "bad" else { throw KafkaError(.deserialization, "bad value") }
            return text
        }
        let failing = Consumer.plainSource(
            Self.settings(kafka, group: "g-ui-failing", key: .string, value: strict),
            subscription: .topics("ui-iterator"))
        var iterator = failing.makeAsyncIterator()
        var values: [String] = []
        var thrown: (any Error)?
        do {
            while let record = try await iterator.next() { values.append(record.value) }
        } catch {
            thrown = error
        }
        #expect(values == ["v0", "v1", "v2", "v3"])
        #expect((thrown as? KafkaError)?.kind == .deserialization)
        #expect(try await iterator.next() == nil)
        #expect(try await iterator.next() == nil)
        await failing.materialized.shutdown()
    }

    // MARK: CommittableOffsetBatch: run.unsafelyUnwrapped

    /// `add` unwraps its current run unchecked only after `run?.partition === offset.partition`
    /// held, which a nil run never passes: the first offset of an empty batch, an offset of a
    /// partition object other than the run's (another partition, or the same partition
    /// re-assigned: a new object), and offsets of the run's own partition all land where they must.
    @Test func aBatchAddsThroughItsRunOnlyForTheRunsOwnPartitionObject() {
        let committer = FakeOffsetCommitter()
        let p0 = TopicPartition("t", 0)
        let p1 = TopicPartition("t", 1)
        let first = ConsumedPartition(p0, groupId: "g", committer: committer)
        let reassigned = ConsumedPartition(p0, groupId: "g", committer: committer)
        let other = ConsumedPartition(p1, groupId: "g", committer: committer)
        var batch = CommittableOffsetBatch()
        batch.add(CommittableOffset(partition: first, offset: 4))
        #expect(batch.offsets == [p0: 5])
        batch.add(CommittableOffset(partition: first, offset: 2))
        batch.add(CommittableOffset(partition: first, offset: 9, metadata: "m"))
        #expect(batch.offsets == [p0: 10])
        batch.add(CommittableOffset(partition: other, offset: 0))
        batch.add(CommittableOffset(partition: reassigned, offset: 3))
        #expect(batch.offsets == [p0: 10, p1: 1], "a lower offset of a new object for the partition changes nothing")
        batch.add(CommittableOffset(partition: reassigned, offset: 11))
        batch.add(CommittableOffset(partition: first, offset: 6))
        #expect(batch.offsets == [p0: 12, p1: 1])
        #expect(batch.batchSize == 7)
        #expect(!batch.isEmpty)
    }

    // MARK: ProducerFlowRing.ResultBuffer and ProducerFlowBatch: @exclusivity(unchecked)

    /// The result buffer's fields are unchecked because one task at a time (the downstream's)
    /// uses them. It moves results in and out of raw storage: growing it while results were
    /// already taken, and dropping it with results left, must move and release each result
    /// exactly once.
    @Test func theResultBufferMovesEachResultOnceAcrossGrowthAndRelease() {
        final class Tracked: Sendable {
            let id: Int
            init(_ id: Int) { self.id = id }
        }
        typealias Ring = ProducerFlowRing<String, String, Tracked>
        var weak: [WeakObject] = []
        var taken: [Int] = []
        do {
            let ring = Ring(parallelism: 16)
            let buffer = Ring.ResultBuffer(capacity: 2)
            func publish(_ ids: Range<Int>) {
                for id in ids {
                    let tracked = Tracked(id)
                    let w = WeakObject()
                    w.object = tracked
                    weak.append(w)
                    _ = ring.publish(.passThrough(tracked), recordCount: 0)
                }
            }
            publish(0..<5)
            guard case .emitted(5) = ring.pop(into: buffer) else {
                Issue.record("five complete messages")
                return
            }
            for _ in 0..<2 { if let result = buffer.take() { taken.append(result.passThrough.id) } }
            ring.giveBack()
            // Three results wait from index 2 on; six more make the buffer grow with some taken.
            publish(5..<11)
            guard case .emitted(6) = ring.pop(into: buffer) else {
                Issue.record("six more complete messages")
                return
            }
            for _ in 0..<5 { if let result = buffer.take() { taken.append(result.passThrough.id) } }
            let gone = weak.filter { $0.isGone }.count
            #expect(gone == 7, "taken results are released once dropped, waiting ones are kept")
        }
        #expect(taken == Array(0..<7))
        let allGone = weak.allSatisfy { $0.isGone }
        #expect(allGone, "results left in the buffer are released with it")
    }

    /// A flexiFlow's collected records are handed between its pump and the producer's poll
    /// thread (`ProducerFlowBatch`: unchecked fields touched only by the batch's owner, the
    /// atomic hand-over ordering the two), and its results are moved through the unchecked
    /// result buffer by the downstream alone. An upstream that pauses often lets the poll
    /// thread take parked batches while the pump comes back for more; a batch touched by both
    /// at once corrupts its entries and byte buffer (a race for ThreadSanitizer, a
    /// use-after-free on reallocation for AddressSanitizer). Every record must be written
    /// once, in order per key, and every result come back once, in input order.
    @Test func batchesHandedBetweenPumpAndPollThreadWriteEveryRecordOnce() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("ui-handover", partitions: 3)
        typealias Message = ProducerMessage<String, String, Int>
        let total = 1_200
        let (upstream, feed) = AsyncStream<Message>.makeStream()
        let feeder = Task {
            for i in 0..<total {
                feed.yield(
                    .single(ProducerRecord(topic: "ui-handover", key: "k\(i % 5)", value: "v\(i)"), passThrough: i))
                // Idle upstream: the pump parks with records collected, the poll thread takes them.
                if i % 40 == 39 { try? await Task.sleep(for: .milliseconds(3)) }
            }
            feed.finish()
        }
        var passed: [Int] = []
        for try await result in Source(upstream).via(Producer.flexiFlow(kafka.producerSettings().withParallelism(100)))
        {
            passed.append(result.passThrough)
        }
        await feeder.value
        #expect(passed == Array(0..<total))
        let written = try await RawKafka.readByPartition(topic: "ui-handover", bootstrapServers: kafka.bootstrapServers)
        let values = written.values.flatMap { $0.map { $0.valueString ?? "" } }
        #expect(values.count == total)
        #expect(Set(values) == Set((0..<total).map { "v\($0)" }))
        for (_, records) in written {
            var lastPerKey: [String: Int] = [:]
            for record in records {
                let i = Int(record.valueString!.dropFirst())!
                let key = record.keyString ?? ""
                #expect(i > (lastPerKey[key] ?? -1), "key \(key): v\(i) after v\(lastPerKey[key] ?? -1)")
                lastPerKey[key] = i
            }
        }
    }

    // MARK: TransactionalReadAhead: nonisolated(unsafe) pull, taken, takenHead

    /// The read-ahead's `taken` and `takenHead` are the pump's alone and `pull` is set once
    /// before either side runs; the reader task reads upstream only while the pump has handed
    /// it over (a commit), into the locked buffer the pump then swaps into `taken`. Hand-overs
    /// at every stage (reader idle, reading, buffer taken while reading) must give the pump
    /// every element once, in upstream order, each moved out of `taken` exactly once.
    @Test func theReadAheadGivesThePumpEveryElementOnceAcrossHandOvers() async throws {
        final class Item: Sendable {
            let id: Int
            init(_ id: Int) { self.id = id }
        }
        final class Upstream: Sendable {
            let next = Mutex(0)
        }
        let total = 400
        let upstream = Upstream()
        let readAhead = TransactionalReadAhead<Item>(limit: 8)
        readAhead.start {
            let id = upstream.next.withLock { n -> Int in
                defer { n += 1 }
                return n
            }
            if id % 5 == 0 { await Task.yield() }
            return id < total ? Item(id) : nil
        }
        let reader = Task { await readAhead.runReader() }
        var seen: [Int] = []
        var handedOver = Set<Int>()
        var weak: [WeakObject] = []
        while let item = try await readAhead.next() {
            // A commit closes the gate every 25 elements: the item and upstream go to the reader
            // (the item comes back first); the commit ends at once, or after the reader read ahead.
            if item.id % 25 == 3, handedOver.insert(item.id).inserted {
                readAhead.handOver(item)
                if item.id % 2 == 0 { try await Task.sleep(for: .milliseconds(2)) }
                readAhead.commitEnded()
                continue
            }
            seen.append(item.id)
            let w = WeakObject()
            w.object = item
            weak.append(w)
        }
        readAhead.cancel()
        await reader.value
        #expect(seen == Array(0..<total))
        #expect(handedOver.count == total / 25)
        let allGone = weak.allSatisfy { $0.isGone }
        #expect(allGone, "every element was moved out of the read-ahead and released once")
    }

    // MARK: BulkProducer (test kit): Unmanaged delivery-report opaque

    /// The test kit's bulk producer gives librdkafka its failure record unretained: the
    /// producer holds it until its handle is destroyed. Records for partitions the topic does
    /// not have fail in delivery reports, which write to it from librdkafka's callback.
    @Test func bulkProducerDeliveryFailuresReachItsFailureRecord() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("ui-bulk", partitions: 1)
        var producer: BulkProducer? = try BulkProducer(bootstrapServers: kafka.bootstrapServers)
        var failure: KafkaError?
        do {
            try producer?.produce(topic: "ui-bulk", indices: 0..<20, roundRobinOver: 4, timeout: .seconds(20)) {
                "v\($0)"
            }
        } catch {
            failure = error
        }
        #expect(failure?.kind == .deliveryFailed)
        #expect(
            failure?.message.contains("delivery to ui-bulk failed: partition") == true, "\(String(describing: failure))"
        )
        // The first failure was taken: a good run reports none.
        try producer?.produce(topic: "ui-bulk", indices: 0..<20, roundRobinOver: 1) { "w\($0)" }
        producer = nil
        let written = try await RawKafka.readByPartition(topic: "ui-bulk", bootstrapServers: kafka.bootstrapServers)
        #expect(written[0]?.filter { $0.valueString?.hasPrefix("w") == true }.count == 20)
    }

    // MARK: ProducerEngine.emptyByte and KafkaBytes: nonisolated(unsafe) pointers

    /// An empty, non-null key or value is produced from a shared one-byte allocation
    /// (`emptyByte`, never written or freed: librdkafka copies zero bytes from it), not NULL;
    /// bytes the application creates (`OwnedBytes`) outlive every copy of the value handed
    /// across tasks. Read back, the empty value is empty and not null, the missing key is null.
    @Test func emptyAndOwnedBytesArriveAsSent() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("ui-bytes", partitions: 1)
        let settings = ProducerSettings(keySerializer: .bytes, valueSerializer: .bytes)
            .withBootstrapServers(kafka.bootstrapServers).withProperty("linger.ms", "2")
        let owned = await Task.detached { KafkaBytes(Array("owned".utf8)) }.value
        let records: [ProducerRecord<KafkaBytes, KafkaBytes>] = [
            ProducerRecord(topic: "ui-bytes", partition: 0, key: KafkaBytes(), value: KafkaBytes()),
            ProducerRecord(topic: "ui-bytes", partition: 0, key: owned, value: owned),
        ]
        try await Source.from(records).run(into: Producer.plainSink(settings))
        let consumerSettings = Self.settings(kafka, group: "g-ui-bytes", key: .optionalBytes, value: .optionalBytes)
        let source = Consumer.plainSource(consumerSettings, subscription: .topics("ui-bytes"))
        var read: [ConsumerRecord<KafkaBytes?, KafkaBytes?>] = []
        for try await record in source {
            read.append(record)
            if read.count == 2 { break }
        }
        await source.materialized.shutdown()
        #expect(read.count == 2)
        #expect(read.first?.key == KafkaBytes(), "an empty key is empty, not null")
        #expect(read.first?.value == KafkaBytes(), "an empty value is empty, not null")
        #expect(read.last?.value.map { String(decoding: $0, as: UTF8.self) } == "owned")
        #expect(read.last?.key == owned)
    }
}
