import Foundation
import ReactiveKafkaTestKit
import StreamKit
import Synchronization
import Testing

@testable import ReactiveKafka

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Issue 15.3's exactly-once test, against a Kafka broker only (`make test-external`): the mock
/// cluster neither stores transactional offsets nor hides aborted records. An event-sourced
/// processor is killed mid-stream (SIGKILL, in a child process of this test bundle), fails with
/// a transaction open (the abort), is killed again, then finishes; the state its committed
/// changelog holds, and its committed outputs, must equal applying every input exactly once.
///
/// The broker must abort a fenced producer's open transaction when the next one with its
/// transactional id starts, as Kafka does. franz-go's kfake before its PR #1398 does not: there
/// the killed run's open transaction is carried on and committed by the next, and this test
/// fails with those inputs applied twice (seen: 719 outputs for 600 inputs).
@Suite(.serialized) struct EventSourcedCrashTests {
    /// In a child: the run to do, as `input changelog output group transactionalId store killAfter`.
    static let childVariable = "REACTIVE_KAFKA_EVENT_SOURCED_CHILD"
    static let reportVariable = "REACTIVE_KAFKA_EVENT_SOURCED_REPORT"
    static let commandCount = 600

    struct Names {
        var input, changelog, output, group, transactionalId, store: String

        var words: [String] { [input, changelog, output, group, transactionalId, store] }
    }

    struct Injected: Error {}

    @Test(
        .enabled(
            if: TestClusterMode.isExternal,
            "the mock cluster neither stores transactional offsets nor hides aborted records: needs KAFKA_BOOTSTRAP_SERVERS"
        ))
    func aProcessKilledMidStreamAndAnAbortLeaveEveryInputAppliedOnce() async throws {
        let environment = ProcessInfo.processInfo.environment
        if let spec = environment[Self.childVariable] {
            let words = spec.split(separator: " ").map(String.init)
            try #require(words.count == 7)
            let names = Names(
                input: words[0], changelog: words[1], output: words[2], group: words[3], transactionalId: words[4],
                store: words[5])
            try await Self.child(
                names, killAfter: try #require(Int(words[6])), report: environment[Self.reportVariable])
            return
        }
        let kafka = try TestCluster()
        let names = Names(
            input: try kafka.createTopic("es-crash-in", partitions: 2),
            changelog: try kafka.createTopic("es-crash-changelog", partitions: 2),
            output: try kafka.createTopic("es-crash-out", partitions: 1), group: kafka.name("es-crash-g"),
            transactionalId: kafka.name("es-crash-t"),
            store: FileManager.default.temporaryDirectory.appendingPathComponent(kafka.name("es-crash") + ".sqlite")
                .path)
        defer { try? FileManager.default.removeItem(atPath: names.store) }
        let commands = Ledger.commands(Self.commandCount)
        try await Ledger.produce(kafka, names.input, commands, partitions: 2)

        // Each phase ends inside the handling of its n-th input, with that input's transaction
        // open: what it committed before stays below its start plus n, so 600 inputs leave work
        // for every phase (at most 149, 99 and 119 inputs are committed before the last run).
        try await Self.killedChild(names, after: 150)
        let afterKill = try await TestData.committedOffsets(
            bootstrapServers: kafka.bootstrapServers, group: names.group, topic: names.input, partitions: 2)
        #expect(afterKill.values.reduce(0, +) < 150, "the kill came before its 150th input committed")
        // In this process: the output function fails at the 100th input, so the stream fails
        // with a transaction open, which is aborted.
        let failing = try Self.pipeline(kafka, names, onInput: Self.failing(at: 100) { throw Injected() })
            .to(Sinks.forEach { _ in }).start()
        let failure = await BoundedWait.within(.seconds(120)) { () -> (any Error)? in
            do {
                try await failing.streamCompletion.value
                return nil
            } catch {
                return error
            }
        }
        #expect(
            failure.flatMap { $0 as? Injected } != nil,
            "the stream fails with the injected error: \(String(describing: failure))")
        await failing.shutdown()
        try await Self.killedChild(names, after: 120)

        // The last run goes on until every input is committed. The killed runs may have committed
        // them all already: each ran ahead of its slow sink by up to a buffer of inputs.
        let inputs = Dictionary(grouping: commands, by: { Int32((Int($0.key.dropFirst(4)) ?? 0) % 2) })
            .mapValues { Int64($0.count) }
        let control = try Self.pipeline(kafka, names) { _ in }.to(Sinks.forEach { _ in }).start()
        let committedAll = try await Eventually.within(.seconds(120)) {
            let committed = try await TestData.committedOffsets(
                bootstrapServers: kafka.bootstrapServers, group: names.group, topic: names.input, partitions: 2)
            return committed == inputs
        }
        #expect(committedAll, "the last run commits every input")
        let drained = await BoundedWait.within(.seconds(60)) { () -> Bool in
            (try? await control.drainAndShutdown()) != nil
        }
        #expect(drained == true, "the last run drains and shuts down")

        var balances: [String: Int] = [:]
        let reader = ChangelogReader(
            kafka.consumerSettings(group: "unused"), topic: names.changelog, logger: .init(label: "test"))
        try await reader.read([0: 0, 1: 0]) { record in
            let key = record.key?.string ?? ""
            balances[key, default: 0] += Int(record.value?.string ?? "") ?? 0
        }
        #expect(balances == Ledger.reference(commands), "the committed changelog applies every input once")
        let outputs = try await TopicReader.allValues(
            topic: names.output, partitions: 1, bootstrapServers: kafka.bootstrapServers, isolation: .readCommitted)
        #expect(
            outputs.count == commands.count,
            "one committed output per input (more: the broker committed a fenced producer's open transaction)")
        #expect(Set(outputs).count == commands.count, "no input's output committed twice")
    }

    /// source → EventSourced.flow (snapshots every 5 events, an output record per input naming it).
    static func pipeline(
        _ kafka: TestCluster, _ names: Names, onInput: @escaping @Sendable (String) throws -> Void
    ) throws -> Source<
        AnyAsyncSequence<EventSourcedOutcome<String, Int, Int, Ledger.Overdraft>>, ConsumerControl
    > {
        let consumer = kafka.consumerSettings(group: names.group)
        let settings = EventSourcedSettings<String, Int, Int>.json(changelogTopic: names.changelog)
            .withSnapshotEvery(5).withSnapshotStore(path: names.store)
        return try Transactional.source(consumer, subscription: .topics(names.input))
            .via(
                EventSourced.flow(
                    Ledger.behavior, settings: settings, consumerSettings: consumer,
                    producerSettings: kafka.producerSettings().withProperty("transaction.timeout.ms", "10000")
                        .withEosCommitInterval(.milliseconds(50)),
                    transactionalId: names.transactionalId
                ) { command, outcome in
                    try onInput(command)
                    let input = outcome.input
                    return [
                        ProducerRecord(
                            topic: names.output, value: "\(input.topicPartition.partition)@\(input.offset)")
                    ]
                })
    }

    /// Runs a child processor that kills itself once `after` of its inputs are committed.
    static func killedChild(_ names: Names, after: Int) async throws {
        let child = try await ChildTestRun.run(
            test: "EventSourcedCrashTests/aProcessKilledMidStreamAndAnAbortLeaveEveryInputAppliedOnce",
            environment: [Self.childVariable: (names.words + ["\(after)"]).joined(separator: " ")],
            reportVariable: Self.reportVariable, timeout: .seconds(180))
        #expect(child.report == "killed after \(after)", "the child did not kill itself:\n\(child.failureExcerpt)")
    }

    /// The child: processes inputs and kills itself while handling its `killAfter`-th, inside
    /// that input's open transaction.
    static func child(_ names: Names, killAfter: Int, report: String?) async throws {
        let kafka = try TestCluster()
        let killing = failing(at: killAfter) {
            if let report {
                try? "killed after \(killAfter)".write(toFile: report, atomically: true, encoding: .utf8)
            }
            kill(getpid(), SIGKILL)
        }
        let control = try pipeline(kafka, names, onInput: killing).to(Sinks.forEach { _ in }).start()
        try await control.streamCompletion.value
    }

    /// An `onInput` that runs `action` at the `n`-th input it sees.
    static func failing(at n: Int, _ action: @escaping @Sendable () throws -> Void) -> @Sendable (String) throws -> Void
    {
        let seen = Mutex(0)
        return { _ in
            let count = seen.withLock { count in
                count += 1
                return count
            }
            if count == n { try action() }
        }
    }
}
