import Foundation
import Logging
import ReactiveKafkaTestKit
import StreamKit
import Synchronization
import Testing

@testable import ReactiveKafka

/// Rebalance hooks: the synchronous handler with its restricted consumer, the
/// asynchronous event stream, and what is (not) emitted around a revoke.
@Suite(.serialized) struct PartitionAssignmentHandlerTests {
    /// Records every call, and seeks newly assigned partitions to `seekTo`.
    final class RecordingHandler: PartitionAssignmentHandler {
        let calls = Locked<[String]>([])
        let owned = Locked<Set<TopicPartition>>([])
        let lookups = Locked<[String: [TopicPartition: Int64]]>([:])
        let seekTo: Int64?
        let delay: Duration?

        init(seekTo: Int64? = nil, delay: Duration? = nil) {
            self.seekTo = seekTo
            self.delay = delay
        }

        func onAssign(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {
            owned.withLock { $0.formUnion(partitions) }
            calls.withLock { $0.append("assign \(partitions.count)") }
            if let delay {
                Thread.sleep(
                    forTimeInterval: Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18)
            }
            do {
                let end = try consumer.endOffsets(partitions)
                let committed = try consumer.committed(partitions)
                let assignment = try consumer.assignment()
                lookups.withLock {
                    $0["end"] = end
                    $0["committed"] = committed
                    $0["assignment"] = Dictionary(uniqueKeysWithValues: assignment.map { ($0, 0) })
                }
                if let seekTo { try consumer.seek(Dictionary(uniqueKeysWithValues: partitions.map { ($0, seekTo) })) }
            } catch {
                calls.withLock { $0.append("error \(error)") }
            }
        }

        func onRevoke(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {
            owned.withLock { $0.subtract(partitions) }
            calls.withLock { $0.append("revoke \(partitions.count)") }
        }

        func onLost(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {
            owned.withLock { $0.subtract(partitions) }
            calls.withLock { $0.append("lost \(partitions.count)") }
        }

        func onStop(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {
            calls.withLock { $0.append("stop \(partitions.count)") }
        }
    }

    /// The offset of each partition's first record among the first `count` records of `source`.
    static func firstOffsets<S: AsyncSequence & Sendable>(of source: S, reading count: Int) async throws -> [Int32:
        Int64]
    where S.Element == ConsumerRecord<String, String> {
        var first: [Int32: Int64] = [:]
        var read = 0
        for try await record in source {
            if first[record.partition] == nil { first[record.partition] = record.offset }
            read += 1
            if read == count { break }
        }
        return first
    }

    static func settings(_ kafka: EmbeddedKafka, group: String) -> ConsumerSettings<String, String> {
        SourceKindsTests.settings(kafka, group: group)
    }

    @Test func theHandlerRunsBeforeRecordsFlowAndCanSeekWithTheRestrictedConsumer() async throws {
        let kafka = try await SourceKindsTests.seeded("hooks", partitions: 2, records: 200)
        let handler = RecordingHandler(seekTo: 60)
        let source = Consumer.plainSource(
            Self.settings(kafka, group: "g-hooks"),
            subscription: .topics("hooks").withPartitionAssignmentHandler(handler))
        // Subscribed before the first pull starts the consumer: a subscription made inside the
        // task could come after the assignment (it did, under the sanitizers' slowdown).
        let observed = source.materialized.rebalanceEvents()
        let events = Task {
            var seen: [RebalanceEvent] = []
            for await event in observed { seen.append(event) }
            return seen
        }
        let first = try await Self.firstOffsets(of: source, reading: 80)
        await source.materialized.shutdown()
        let partitions: Set<TopicPartition> = [TopicPartition("hooks", 0), TopicPartition("hooks", 1)]
        // The seek in onAssign happened before any record was emitted.
        #expect(first == [0: 60, 1: 60])
        #expect(handler.calls.withLock { $0 } == ["assign 2", "stop 2", "revoke 2"])
        #expect(
            handler.lookups.withLock { $0["end"] } == Dictionary(uniqueKeysWithValues: partitions.map { ($0, 100) }))
        #expect(handler.lookups.withLock { $0["committed"] } == [:])
        #expect(handler.lookups.withLock { $0["assignment"].map { Set($0.keys) } } == partitions)
        // Observers saw the same, and their stream finished with the consumer.
        #expect(await events.value == [.assigned(partitions), .revoked(partitions)])
    }

    /// Seeks newly assigned partitions at once, with no look-up before (which gave librdkafka time).
    final class SeekingHandler: PartitionAssignmentHandler {
        let offset: Int64
        let errors = Locked<[String]>([])

        init(to offset: Int64) { self.offset = offset }

        func onAssign(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {
            do {
                try consumer.seek(Dictionary(uniqueKeysWithValues: partitions.map { ($0, offset) }))
            } catch {
                errors.withLock { $0.append("\(error)") }
            }
        }
        func onRevoke(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {}
        func onLost(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {}
        func onStop(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {}
    }

    /// librdkafka starts fetching an assigned partition only once it has looked up where it starts,
    /// and refuses a seek before (`_STATE`): a seek in `onAssign` waits for the fetching to start and
    /// still comes before any record. With `latest` nothing is fetched where the partitions start: the
    /// end-of-partition event is what tells that fetching started.
    @Test(arguments: ["earliest", "latest"])
    func aSeekRightInOnAssignTakesEffectBeforeAnyRecord(reset: String) async throws {
        let topic = "seek-at-once-\(reset)"
        let kafka = try await SourceKindsTests.seeded(topic, partitions: 2, records: 200)
        let handler = SeekingHandler(to: 60)
        let source = Consumer.plainSource(
            Self.settings(kafka, group: "g-seek-at-once").withProperty("auto.offset.reset", reset),
            subscription: .topics(topic).withPartitionAssignmentHandler(handler))
        let first = try await withTimeout(seconds: 30) { try await Self.firstOffsets(of: source, reading: 80) }
        await source.materialized.shutdown()
        #expect(handler.errors.withLock { $0 } == [])
        #expect(first == [0: 60, 1: 60])
    }

    @Test func aSlowHandlerIsReportedAsAWarning() async throws {
        let kafka = try await SourceKindsTests.seeded("slowhook", partitions: 1, records: 10)
        let logs = CapturedLogs()
        let logger = Logger(label: "test.slow-handler") { _ in CapturingLogHandler(logs: logs) }
        let source = Consumer.plainSource(
            Self.settings(kafka, group: "g-slowhook").withPartitionHandlerWarning(.milliseconds(100)),
            subscription: .topics("slowhook").withPartitionAssignmentHandler(
                RecordingHandler(delay: .milliseconds(300))),
            logger: logger)
        for try await record in source where record.offset == 9 { break }
        await source.materialized.shutdown()
        #expect(
            logs.messages.contains { $0.level == .warning && $0.message.contains("onAssign took") }, "\(logs.messages)")
    }

    @Test func recordsOfRevokedPartitionsAreNeverEmittedAfterTheRevoke() async throws {
        let kafka = try await SourceKindsTests.seeded("norevoked", partitions: 8, records: 40_000)
        let violations = Locked<[String]>([])
        let ledger = OffsetLedger()
        func member(_ name: String) -> (handler: RecordingHandler, control: DrainingControl<Void>) {
            let handler = RecordingHandler()
            let control = Consumer.committableSource(
                Self.settings(kafka, group: "g-norevoked").withMaxBatchSize(500),
                subscription: .topics("norevoked").withPartitionAssignmentHandler(handler)
            )
            .map { message in
                let partition = message.committableOffset.partitionOffset.topicPartition
                // Emitted now: its partition must be one this member holds.
                if !handler.owned.withLock({ $0.contains(partition) }) {
                    violations.withLock {
                        $0.append("\(name) emitted \(partition)@\(message.record.offset) after its revoke")
                    }
                }
                ledger.record(partition, message.record.offset)
                if message.record.offset % 20 == 0 { try await Task.sleep(for: .milliseconds(5)) }
                return message.committableOffset
            }
            .to(Committer.sink(CommitterSettings()))
            .start()
            return (handler, control)
        }
        let a = member("a")
        #expect(await ledger.waitFor(distinct: 3_000))
        let b = member("b")
        #expect(await ledger.waitFor(distinct: 40_000, timeout: .seconds(90)))
        _ = try await a.control.drainAndShutdown()
        _ = try await b.control.drainAndShutdown()
        #expect(a.handler.calls.withLock { $0 }.contains { $0.hasPrefix("revoke") }, "a rebalance happened")
        #expect(violations.withLock { $0 }.isEmpty, "\(violations.withLock { $0.prefix(5) })")
    }
}

/// Log lines captured by ``CapturingLogHandler``.
final class CapturedLogs: Sendable {
    private let lines = Mutex<[(level: Logger.Level, message: String)]>([])
    func append(_ level: Logger.Level, _ message: String) { lines.withLock { $0.append((level, message)) } }
    var messages: [(level: Logger.Level, message: String)] { lines.withLock { $0 } }
}

/// A log handler that keeps what is logged, for tests.
struct CapturingLogHandler: LogHandler {
    let logs: CapturedLogs
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(
        level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String,
        function: String, line: UInt
    ) {
        logs.append(level, message.description)
    }
}
