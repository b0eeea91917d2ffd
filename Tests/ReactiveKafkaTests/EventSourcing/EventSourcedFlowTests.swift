import Foundation
import ReactiveKafkaTestKit
import StreamKit
import Synchronization
import Testing

@testable import ReactiveKafka

/// Balances per account, as signed amounts ("+5", "-3"); a withdrawal below zero is refused.
enum Ledger {
    struct Overdraft: Error {}

    static let behavior = EventSourcedBehavior<Int, String, Int, Overdraft>(
        initialState: 0,
        decide: { (balance: Int, command: String) throws(Overdraft) -> [Int] in
            guard let amount = Int(command), amount != 0 else { return [] }
            guard balance + amount >= 0 else { throw Overdraft() }
            return [amount]
        },
        evolve: { balance, amount in balance + amount })

    /// `count` commands over `accounts` accounts, from `start` (deterministic).
    static func commands(_ count: Int, from start: Int = 0, accounts: Int = 6) -> [(key: String, value: String)] {
        (start..<start + count).map { index in
            ("acct\(index % accounts)", index % 4 == 3 ? "-\(index % 9)" : "+\(index % 5 + 1)")
        }
    }

    /// Each command applied once, in order, by a plain loop: the state any run must reach.
    static func reference(_ commands: [(key: String, value: String)]) -> [String: Int] {
        var balances: [String: Int] = [:]
        for (key, command) in commands {
            let amount = Int(command) ?? 0
            let balance = balances[key, default: 0]
            if balance + amount >= 0 { balances[key] = balance + amount }
        }
        return balances
    }

    /// Writes `commands` with each account's commands in one partition of `partitions`.
    static func produce(
        _ kafka: TestCluster, _ topic: String, _ commands: [(key: String, value: String)], partitions: Int32
    )
        async throws
    {
        for partition in 0..<partitions {
            let mine = commands.filter { Int32((Int($0.key.dropFirst(4)) ?? 0) % Int(partitions)) == partition }
            try await TestData.produce(
                bootstrapServers: kafka.bootstrapServers, topic: topic, records: mine.map { ($0.key, $0.value) },
                partition: partition)
        }
    }
}

/// The latest committed state per key seen in a run's outcomes, and how many inputs committed.
final class Balances: Sendable {
    private let states = Mutex<[String: Int]>([:])
    let committed = Counter()

    func add(_ outcome: EventSourcedOutcome<String, Int, Int, Ledger.Overdraft>) {
        states.withLock { $0[outcome.key] = outcome.state }
        committed.add("\(outcome.input.topicPartition.partition)@\(outcome.input.offset)")
    }

    var current: [String: Int] { states.withLock { $0 } }
}

/// The event-sourced flow on the embedded cluster (or, with `make test-external`, on a Kafka
/// cluster): a run's state, its recovery from the changelog by the next run, with and
/// without snapshots. The mock neither stores transactional offsets nor hides aborted records,
/// so crashes and aborts are shown in external mode (EventSourcedCrashTests).
@Suite(.serialized) struct EventSourcedFlowTests {
    static func run(
        _ kafka: TestCluster, input: String, group: String, transactionalId: String,
        settings: EventSourcedSettings<String, Int, Int>, expecting count: Int
    ) async throws -> [String: Int] {
        let balances = Balances()
        let consumer = kafka.consumerSettings(group: group)
        let control = try Transactional.source(consumer, subscription: .topics(input))
            .via(
                EventSourced.flow(
                    Ledger.behavior, settings: settings, consumerSettings: consumer,
                    producerSettings: kafka.producerSettings().withProperty("transaction.timeout.ms", "10000"),
                    transactionalId: transactionalId)
            )
            .to(Sinks.forEach { balances.add($0) })
            .start()
        try await balances.committed.waitFor(count: count)
        try await control.drainAndShutdown()
        return balances.current
    }

    @Test func aRunThatNeverReceivedARecordDrainsAndShutsDown() async throws {
        let kafka = try TestCluster()
        let changelog = try kafka.createTopic("es-idle-changelog", partitions: 2)
        let input = try kafka.createTopic("es-idle-in", partitions: 2)
        let consumer = kafka.consumerSettings(group: kafka.name("es-idle-g"))
        let control = try Transactional.source(consumer, subscription: .topics(input))
            .via(
                EventSourced.flow(
                    Ledger.behavior, settings: .json(changelogTopic: changelog), consumerSettings: consumer,
                    producerSettings: kafka.producerSettings().withProperty("transaction.timeout.ms", "10000"),
                    transactionalId: kafka.name("es-idle-t"))
            )
            .to(Sinks.forEach { _ in })
            .start()
        let assigned = try await Eventually.within(.seconds(30)) {
            ((try? await control.control.withConsumer { try $0.assignment() }) ?? []).count == 2
        }
        #expect(assigned)
        let drained = await BoundedWait.within(.seconds(30)) { () -> Bool in
            (try? await control.drainAndShutdown()) != nil
        }
        #expect(drained == true, "drainAndShutdown of an idle event-sourced run returns")
    }

    @Test(arguments: [false, true])
    func aSecondRunRecoversTheStateFromTheChangelogAndGoesOn(withSnapshots: Bool) async throws {
        let kafka = try TestCluster()
        let base = withSnapshots ? "es-snap" : "es-log"
        let changelog = try kafka.createTopic(base + "-changelog", partitions: 2)
        let first = try kafka.createTopic(base + "-in1", partitions: 2)
        let second = try kafka.createTopic(base + "-in2", partitions: 2)
        let before = Ledger.commands(120)
        let after = Ledger.commands(80, from: 120)
        try await Ledger.produce(kafka, first, before, partitions: 2)
        try await Ledger.produce(kafka, second, after, partitions: 2)
        let store = FileManager.default.temporaryDirectory.appendingPathComponent(kafka.name(base) + ".sqlite").path
        defer { try? FileManager.default.removeItem(atPath: store) }
        var settings = EventSourcedSettings<String, Int, Int>.json(changelogTopic: changelog).withSnapshotEvery(4)
        if withSnapshots { settings = settings.withSnapshotStore(path: store) }

        let firstRun = try await Self.run(
            kafka, input: first, group: kafka.name(base + "-g1"), transactionalId: kafka.name(base + "-t"),
            settings: settings, expecting: before.count)
        #expect(firstRun == Ledger.reference(before))
        // Another input topic, the same changelog: the state starts where the first run left it.
        let secondRun = try await Self.run(
            kafka, input: second, group: kafka.name(base + "-g2"), transactionalId: kafka.name(base + "-t"),
            settings: settings, expecting: after.count)
        #expect(secondRun == Ledger.reference(before + after).filter { secondRun[$0.key] != nil })
        #expect(secondRun.count == 6)

        if withSnapshots {
            let snapshots = SnapshotStore(path: store, topic: changelog)
            try await snapshots.open()
            let stored = try await snapshots.load(0)
            await snapshots.close()
            #expect(stored.rows.count == 3, "partition 0 holds acct0, acct2 and acct4")
            #expect((stored.replayFrom ?? 0) > 0, "the snapshots bound the replay")
        }
    }

    @Test func badSettingsAreATypedErrorBeforeAnythingRuns() throws {
        let kafka = try TestCluster()
        let settings = EventSourcedSettings<String, Int, Int>.json(changelogTopic: "c").withSnapshotEvery(0)
        #expect(throws: EventSourcedError.self) {
            _ = try EventSourced.flow(
                Ledger.behavior, settings: settings, consumerSettings: kafka.consumerSettings(group: "g"),
                producerSettings: kafka.producerSettings(), transactionalId: "t")
        }
    }
}
