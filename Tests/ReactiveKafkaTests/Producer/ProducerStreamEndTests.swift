import Foundation
import ReactiveKafkaTestKit
import StreamKit
import Synchronization
import Testing

@testable import ReactiveKafka

/// A stream's end is the end of the clients its stages created (issue 12): a flow or sink that
/// made its own producer closes it when its stream ends, however it ends; a shared
/// `KafkaProducer` passed in stays open until its own `close()`; a transactional source whose
/// stream ends closes its consumer.
///
/// Two observables, both of which stay up while a client is open:
/// - the process's thread count (librdkafka starts several threads per client, and the
///   connector one or two of its own) back at its baseline; it is the whole process's, so
///   suites running beside this one can disturb it;
/// - the TCP connections from this process to the test's own embedded cluster (no other
///   suite connects to it): librdkafka keeps a connection to each broker it talks to until
///   the client is destroyed (`connections.max.idle.ms` is off by default).
@Suite(.serialized) struct ProducerStreamEndTests {
    typealias Settings = ProducerSettings<String, String>

    // MARK: Observables

    static func threadCount() -> Int { StreamEndTests.threadCount() }

    static func eventually(within limit: Duration, _ condition: () -> Bool) async throws -> Bool {
        try await StreamEndTests.eventually(within: limit, condition)
    }

    /// Established TCP connections from this process to `kafka`'s brokers (Linux: /proc/self/net/tcp{,6};
    /// the client's side of a connection is the one whose remote port is a broker's).
    static func connections(to kafka: EmbeddedKafka) -> Int {
        let ports = Set(
            kafka.bootstrapServers.split(separator: ",").compactMap {
                $0.split(separator: ":").last.flatMap { Int($0) }
            })
        var count = 0
        for file in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
            // Read to the end: a /proc file has no size for `String(contentsOfFile:)` to go by.
            guard let handle = FileHandle(forReadingAtPath: file) else { continue }
            defer { try? handle.close() }
            let text = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
            for line in text.split(separator: "\n").dropFirst() {
                // sl local_address rem_address st …: addresses are hex ip:port, state 01 is ESTABLISHED.
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                guard fields.count > 3, fields[3] == "01",
                    let port = fields[2].split(separator: ":").last.flatMap({ Int($0, radix: 16) })
                else { continue }
                if ports.contains(port) { count += 1 }
            }
        }
        return count
    }

    /// No client of `kafka` is left: every connection to it is closed.
    static func expectDisconnected(_ kafka: EmbeddedKafka, _ what: String) async throws {
        let disconnected = try await eventually(within: .seconds(10)) { connections(to: kafka) == 0 }
        #expect(
            disconnected,
            "\(what): \(connections(to: kafka)) connections to the cluster are still open: a client was not closed")
    }

    /// Runs one stream (`warmUp`, which also brings up threads started once per process), then
    /// ``streams`` more (`each`), and expects every connection and thread they made released.
    static func expectStreamsRelease(
        _ kafka: EmbeddedKafka, _ what: String, warmUp: () async throws -> Void, each: () async throws -> Void
    ) async throws {
        try await warmUp()
        try await expectDisconnected(kafka, "warm-up")
        let before = threadCount()
        for _ in 0..<streams { try await each() }
        try await expectReleased(kafka, threadsBefore: before, "\(streams) \(what)")
    }

    /// After streams ran, no client of `kafka` is left: every connection to this test's own cluster
    /// is closed, which librdkafka does as it destroys a client (its broker threads close them).
    /// The process's thread count is logged, not asserted: other suites run beside this one in
    /// the test process and start and end threads of their own (a full run failed on it once,
    /// with every connection closed); StreamEndTests asserts the thread count for consumers.
    static func expectReleased(_ kafka: EmbeddedKafka, threadsBefore baseline: Int, _ what: String) async throws {
        try await expectDisconnected(kafka, what)
        _ = try await eventually(within: .seconds(5)) { threadCount() <= baseline + 2 }
        if threadCount() > baseline + 2 {
            print("\(what): threads before \(baseline), after \(threadCount()) (other suites run alongside)")
        }
    }

    // MARK: Upstreams

    /// `count` messages, then either the end or (endless) a wait that only cancellation ends.
    struct Feed<PassThrough: Sendable>: AsyncSequence, Sendable {
        let topic: String
        let count: Int
        let endless: Bool
        var failsAtEnd = false
        let passThrough: @Sendable (Int) -> PassThrough
        var pulled: Counter? = nil

        func makeAsyncIterator() -> Iterator { Iterator(feed: self) }

        struct Iterator: AsyncIteratorProtocol {
            let feed: Feed
            var index = 0

            mutating func next() async throws -> ProducerMessage<String, String, PassThrough>? {
                if index < feed.count {
                    defer { index += 1 }
                    feed.pulled?.add("\(index)")
                    return .single(
                        ProducerRecord(topic: feed.topic, value: "m\(index)"), passThrough: feed.passThrough(index))
                }
                if feed.failsAtEnd { throw KafkaError(.illegalState, "upstream failed") }
                if feed.endless { try await Task.sleep(for: .seconds(3600)) }
                return nil
            }
        }
    }

    // MARK: Endings

    /// The ways a flow's stream can end.
    enum FlowEnding: String, CaseIterable, Sendable {
        case takeN, breakOutOfTheLoop, cancelTheTask, upstreamCompletes
    }

    /// The ways a sink's stream can end.
    enum SinkEnding: String, CaseIterable, Sendable {
        case upstreamCompletes, upstreamFails, cancelTheTask
    }

    /// Runs the results of a flow over `upstream(endless)` until `ending` ends them.
    static func run<PassThrough: Sendable>(
        _ ending: FlowEnding,
        _ results: @Sendable (_ endless: Bool) -> AnyAsyncSequence<ProducerResult<String, String, PassThrough>>
    ) async throws {
        switch ending {
        case .takeN:
            var n = 0
            for try await _ in results(true).take(5) { n += 1 }
            #expect(n == 5)
        case .breakOutOfTheLoop:
            for try await _ in results(true) { break }
        case .cancelTheTask:
            let received = Counter()
            let stream = results(true)
            let task = Task {
                var n = 0
                for try await _ in stream {
                    n += 1
                    received.add("\(n)")
                }
            }
            try await received.waitFor(count: 1)
            task.cancel()
            _ = await task.result
        case .upstreamCompletes:
            var n = 0
            for try await _ in results(false) { n += 1 }
            #expect(n == 20, "every message of the finite upstream has its result")
        }
    }

    /// Runs `sink` over a feed of 20 messages until `ending` ends it.
    static func run<PassThrough: Sendable>(
        _ ending: SinkEnding, topic: String, passThrough: @escaping @Sendable (Int) -> PassThrough,
        _ sink: @escaping @Sendable (Feed<PassThrough>) async throws -> Void
    ) async throws {
        switch ending {
        case .upstreamCompletes:
            try await sink(Feed(topic: topic, count: 20, endless: false, passThrough: passThrough))
        case .upstreamFails:
            await #expect(throws: KafkaError.self) {
                try await sink(
                    Feed(topic: topic, count: 20, endless: false, failsAtEnd: true, passThrough: passThrough))
            }
        case .cancelTheTask:
            let pulled = Counter()
            let feed = Feed(topic: topic, count: 20, endless: true, passThrough: passThrough, pulled: pulled)
            let task = Task { try await sink(feed) }
            try await pulled.waitFor(count: 20)
            // Let the sink produce what it pulled before it is cancelled.
            try await Task.sleep(for: .milliseconds(200))
            task.cancel()
            _ = await task.result
        }
    }

    static func settings(_ kafka: EmbeddedKafka) -> Settings { kafka.producerSettings() }

    /// The record of a feed's single message.
    @Sendable static func record(_ message: ProducerMessage<String, String, Void>) -> ProducerRecord<String, String> {
        guard case .single(let record, _) = message else { fatalError("a feed emits single messages") }
        return record
    }

    static func transactionalSettings(_ kafka: EmbeddedKafka) -> Settings {
        kafka.producerSettings().withProperty("transaction.timeout.ms", "10000")
    }

    /// Offsets made by hand for transactional stages (of a topic created for them, as a broker
    /// refuses TxnOffsetCommit for an unknown one).
    static func handMadeOffsets(_ kafka: EmbeddedKafka, _ base: String) throws -> @Sendable (Int) -> TransactionalOffset
    {
        let group = try ConsumerGroupMetadata(groupId: base + "-g")
        try kafka.createTopic(base + "-up", partitions: 1)
        let topic = base + "-up"
        return { i in
            TransactionalOffset(
                partitionOffset: PartitionOffset(
                    groupId: base + "-g", topicPartition: TopicPartition(topic, 0), offset: Int64(i)),
                groupMetadata: group)
        }
    }

    static let streams = 5

    // MARK: 1. Stages that create their own producer release it

    @Test(arguments: FlowEnding.allCases)
    func aFlexiFlowReleasesItsOwnProducerWhenItsStreamEnds(ending: FlowEnding) async throws {
        let kafka = try EmbeddedKafka()
        let topic = "ff-\(ending.rawValue)"
        try kafka.createTopic(topic, partitions: 2)
        let settings = Self.settings(kafka)
        let flow = { @Sendable (endless: Bool) in
            Feed<Int>(topic: topic, count: 20, endless: endless, passThrough: { $0 }).via(Producer.flexiFlow(settings))
        }
        try await Self.expectStreamsRelease(
            kafka, "flexiFlows ended by \(ending)", warmUp: { try await Self.run(.upstreamCompletes, flow) },
            each: { try await Self.run(ending, flow) })
    }

    @Test(arguments: SinkEnding.allCases)
    func aPlainSinkReleasesItsOwnProducerWhenItsStreamEnds(ending: SinkEnding) async throws {
        let kafka = try EmbeddedKafka()
        let topic = "ps-\(ending.rawValue)"
        try kafka.createTopic(topic, partitions: 2)
        let settings = Self.settings(kafka)
        let sink = { @Sendable (feed: Feed<Void>) async throws in
            try await Producer.plainSink(settings).run(feed.map(Self.record))
        }
        try await Self.expectStreamsRelease(
            kafka, "plainSinks ended by \(ending)",
            warmUp: { try await Self.run(.upstreamCompletes, topic: topic, passThrough: { _ in () }, sink) },
            each: { try await Self.run(ending, topic: topic, passThrough: { _ in () }, sink) })
    }

    @Test(arguments: [SinkEnding.upstreamCompletes, .cancelTheTask])
    func aCommittableSinkReleasesItsOwnProducerAndItsSourceItsConsumerWhenTheStreamEnds(ending: SinkEnding) async throws
    {
        let input = "cs-\(ending.rawValue)"
        let kafka = try await StreamEndTests.seeded(input, partitions: 2, records: 500)
        let output = input + "-out"
        try kafka.createTopic(output, partitions: 1)
        let settings = Self.settings(kafka)
        func stream(_ i: Int, _ ending: SinkEnding) async throws {
            let source = Consumer.committableSource(
                StreamEndTests.settings(kafka, group: "g-\(input)-\(i)"), subscription: .topics(input))
            let messages = { @Sendable (message: CommittableMessage<String, String>) in
                ProducerMessage<String, String, CommittableOffset>.single(
                    ProducerRecord(topic: output, value: message.record.value), passThrough: message.committableOffset)
            }
            let sink = Producer.committableSink(settings, committerSettings: CommitterSettings())
            switch ending {
            case .upstreamCompletes:
                try await sink.run(source.take(20).map(messages))
            case .cancelTheTask:
                let seen = Counter()
                let task = Task {
                    try await sink.run(
                        source.map { message in
                            seen.add(message.record.value)
                            return messages(message)
                        })
                }
                try await seen.waitFor(count: 20)
                task.cancel()
                _ = await task.result
            case .upstreamFails:
                Issue.record("not run")
            }
            let closed = try await Self.eventually(within: .seconds(10)) { source.materialized.isShutdown }
            #expect(closed, "the source's consumer closed with the stream (\(ending))")
        }
        try await stream(0, .upstreamCompletes)
        try await Self.expectDisconnected(kafka, "warm-up")
        let before = Self.threadCount()
        for i in 1...3 { try await stream(i, ending) }
        try await Self.expectReleased(kafka, threadsBefore: before, "3 committableSink streams ended by \(ending)")
    }

    @Test(arguments: FlowEnding.allCases)
    func aTransactionalFlowReleasesItsOwnProducerWhenItsStreamEnds(ending: FlowEnding) async throws {
        let kafka = try EmbeddedKafka()
        let base = "tf-\(ending.rawValue)"
        try kafka.createTopic(base + "-out", partitions: 2)
        let offset = try Self.handMadeOffsets(kafka, base)
        let settings = Self.transactionalSettings(kafka)
        let runs = Atomic<Int>(0)
        let flow = { @Sendable (endless: Bool) in
            let id = "\(base)-\(runs.add(1, ordering: .relaxed).newValue)"
            return Feed(topic: base + "-out", count: 20, endless: endless, passThrough: offset)
                .via(Transactional.flow(settings, transactionalId: id, eosCommitInterval: .milliseconds(50)))
        }
        try await Self.expectStreamsRelease(
            kafka, "transactional flows ended by \(ending)", warmUp: { try await Self.run(.upstreamCompletes, flow) },
            each: { try await Self.run(ending, flow) })
    }

    @Test(arguments: SinkEnding.allCases)
    func aTransactionalSinkReleasesItsOwnProducerWhenItsStreamEnds(ending: SinkEnding) async throws {
        let kafka = try EmbeddedKafka()
        let base = "ts-\(ending.rawValue)"
        try kafka.createTopic(base + "-out", partitions: 2)
        let offset = try Self.handMadeOffsets(kafka, base)
        let settings = Self.transactionalSettings(kafka)
        let runs = Atomic<Int>(0)
        let sink = { @Sendable (feed: Feed<TransactionalOffset>) async throws in
            let id = "\(base)-\(runs.add(1, ordering: .relaxed).newValue)"
            try await Transactional.sink(settings, transactionalId: id, eosCommitInterval: .milliseconds(50)).run(feed)
        }
        try await Self.expectStreamsRelease(
            kafka, "transactional sinks ended by \(ending)",
            warmUp: { try await Self.run(.upstreamCompletes, topic: base + "-out", passThrough: offset, sink) },
            each: { try await Self.run(ending, topic: base + "-out", passThrough: offset, sink) })
    }

    // MARK: 2. A shared producer stays open

    @Test(arguments: FlowEnding.allCases)
    func aSharedProducerStaysOpenAfterTheStreamsOverItEndUntilItsOwnClose(ending: FlowEnding) async throws {
        let kafka = try EmbeddedKafka()
        let topic = "shared-\(ending.rawValue)"
        try kafka.createTopic(topic, partitions: 1)
        let settings = Self.settings(kafka)
        let producer = try KafkaProducer(settings)
        let flow = { @Sendable (endless: Bool) in
            Feed<Int>(topic: topic, count: 20, endless: endless, passThrough: { $0 }).via(
                Producer.flexiFlow(settings, producer: producer))
        }
        for _ in 0..<3 { try await Self.run(ending, flow) }
        // A plain sink over it ends too (its upstream completes).
        try await Producer.plainSink(settings, producer: producer)
            .run(Feed<Void>(topic: topic, count: 20, endless: false, passThrough: { _ in () }).map(Self.record))
        try await Task.sleep(for: .milliseconds(500))

        // The producer is still open: it is connected, and what it sends is written.
        #expect(Self.connections(to: kafka) > 0, "the shared producer is connected after the streams over it ended")
        let metadata = try await producer.send(ProducerRecord(topic: topic, value: "after the streams"))
        #expect(metadata.offset >= 0)
        let values = try await TopicReader.allValues(
            topic: topic, partitions: 1, bootstrapServers: kafka.bootstrapServers, isolation: .readUncommitted)
        #expect(values.last == "after the streams", "the record sent after the streams ended arrived")
        #expect(values.filter { $0 == "m0" }.count == 4, "each of the four streams wrote its first message")

        // Only its own close ends it.
        await producer.close()
        await #expect(throws: KafkaError.self) {
            _ = try await producer.send(ProducerRecord(topic: topic, value: "after close"))
        }
        let disconnected = try await Self.eventually(within: .seconds(10)) { Self.connections(to: kafka) == 0 }
        #expect(disconnected, "close() closed the shared producer")
    }

    // MARK: 3. A transactional source whose stream ends closes its consumer

    enum SourceEnding: String, CaseIterable, Sendable {
        case takeN, breakOutOfTheLoop, cancelTheTask
    }

    static func run(
        _ ending: SourceEnding,
        _ source: Source<KafkaConsumerSequence<TransactionalMessage<String, String>>, ConsumerControl>
    ) async throws {
        switch ending {
        case .takeN:
            for try await _ in source.take(5) {}
        case .breakOutOfTheLoop:
            for try await _ in source { break }
        case .cancelTheTask:
            let started = Counter()
            let task = Task { for try await message in source { started.add(message.record.value) } }
            try await started.waitFor(count: 1)
            task.cancel()
            _ = await task.result
        }
    }

    @Test(arguments: SourceEnding.allCases)
    func aTransactionalSourceWhoseStreamEndsClosesItsConsumerAndItsConnections(ending: SourceEnding) async throws {
        let topic = "tsrc-\(ending.rawValue)"
        let kafka = try await StreamEndTests.seeded(topic, partitions: 2, records: 200)
        func source(_ i: Int) -> Source<KafkaConsumerSequence<TransactionalMessage<String, String>>, ConsumerControl> {
            Transactional.source(StreamEndTests.settings(kafka, group: "g-\(topic)-\(i)"), subscription: .topics(topic))
        }
        try await Self.run(ending, source(0))
        try await Self.expectDisconnected(kafka, "warm-up")
        let before = Self.threadCount()
        for i in 1...3 {
            let source = source(i)
            try await Self.run(ending, source)
            let closed = try await Self.eventually(within: .seconds(8)) { source.materialized.isShutdown }
            #expect(closed, "the transactional source's consumer is still open after its stream ended (\(ending))")
            #expect(
                source.materialized.leftGroupCleanly,
                "the transactional source's consumer did not leave its group (\(ending))")
        }
        try await Self.expectReleased(kafka, threadsBefore: before, "3 transactional sources ended by \(ending)")
    }

    @Test(arguments: [SourceEnding.breakOutOfTheLoop, .cancelTheTask])
    func aTransactionalPartitionedSourceWhoseStreamEndsClosesItsConsumer(ending: SourceEnding) async throws {
        let topic = "tpsrc-\(ending.rawValue)"
        let kafka = try await StreamEndTests.seeded(topic, partitions: 2, records: 200)
        let source = Transactional.partitionedSource(
            StreamEndTests.settings(kafka, group: "g-\(topic)"), subscription: .topics(topic))
        switch ending {
        case .breakOutOfTheLoop:
            // Out of a sub-stream after its first record, then out of the outer stream.
            for try await assigned in source {
                let subStream = assigned.source
                for try await _ in subStream { break }
                break
            }
        case .cancelTheTask:
            let seen = Counter()
            let task = Task {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for try await assigned in source {
                        let subStream = assigned.source
                        group.addTask { for try await message in subStream { seen.add(message.record.value) } }
                    }
                    try await group.waitForAll()
                }
            }
            try await seen.waitFor(count: 10)
            task.cancel()
            _ = await task.result
        case .takeN:
            Issue.record("not run")
        }
        let closed = try await Self.eventually(within: .seconds(8)) { source.materialized.isShutdown }
        let disconnected = try await Self.eventually(within: .seconds(2)) { Self.connections(to: kafka) == 0 }
        // Its context keeps the last partition it emitted from: counting that as an emitted offset
        // still to be committed by a committer (there is none: the producer's transaction commits
        // it) held the consumer for closeTimeout after the stream ended.
        #expect(
            closed, "the transactional partitioned source's consumer is still open after its stream ended (\(ending))")
        #expect(source.materialized.leftGroupCleanly, "it did not leave its group (\(ending))")
        #expect(disconnected, "\(Self.connections(to: kafka)) connections to the cluster are still open")
        await source.materialized.shutdown()
    }

    @Test func aRestartingTransactionalSourceLeaksNoMemberPerRestart() async throws {
        let kafka = try await StreamEndTests.seeded("trestart", partitions: 2, records: 200)
        let settings = StreamEndTests.settings(kafka, group: "g-trestart")
        let controls = Mutex<[ConsumerControl]>([])
        let restarting = RestartSource.onFailuresWithBackoff(
            RestartSettings(
                minBackoff: .milliseconds(10), maxBackoff: .milliseconds(50), randomFactor: 0, maxRestarts: 3)
        ) {
            let source = Transactional.source(settings, subscription: .topics("trestart"))
            controls.withLock { $0.append(source.materialized) }
            // Each run fails after its first record, as a processing error would.
            return source.map { _ -> String in throw KafkaError(.illegalState, "processing failed") }
        }
        await #expect(throws: (any Error).self) { for try await _ in restarting {} }
        let all = controls.withLock { $0 }
        #expect(all.count == 4, "the first run and three restarts")
        let closed = try await Self.eventually(within: .seconds(10)) { all.allSatisfy(\.isShutdown) }
        #expect(
            closed,
            "a member leaked per restart: \(all.filter { !$0.isShutdown }.count) of \(all.count) consumers still open")
        #expect(all.allSatisfy { $0.leftGroupCleanly }, "every restarted member left its group")
        let disconnected = try await Self.eventually(within: .seconds(10)) { Self.connections(to: kafka) == 0 }
        #expect(
            disconnected, "\(Self.connections(to: kafka)) connections to the cluster are still open after the restarts")
    }
}
