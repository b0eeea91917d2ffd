import Foundation
import MetricsTestKit
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

    /// How many events applying `commands` once, in order, writes (one per accepted non-zero amount).
    static func eventCount(_ commands: [(key: String, value: String)]) -> Int {
        var balances: [String: Int] = [:]
        var events = 0
        for (key, command) in commands {
            let amount = Int(command) ?? 0
            let balance = balances[key, default: 0]
            if amount != 0, balance + amount >= 0 {
                balances[key] = balance + amount
                events += 1
            }
        }
        return events
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
        settings: EventSourcedSettings<String, Int, Int>, expecting count: Int, metrics: TestMetrics? = nil
    ) async throws -> [String: Int] {
        let balances = Balances()
        var consumer = kafka.consumerSettings(group: group)
        if let metrics { consumer.metrics.factory = metrics }
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
        let metrics = TestMetrics()
        let secondRun = try await Self.run(
            kafka, input: second, group: kafka.name(base + "-g2"), transactionalId: kafka.name(base + "-t"),
            settings: settings, expecting: after.count, metrics: metrics)
        #expect(secondRun == Ledger.reference(before + after).filter { secondRun[$0.key] != nil })
        #expect(secondRun.count == 6)
        // Both partitions were assigned together and recovered together, by one read.
        let recoveries = metrics.timers(label: MessagingMetric.operationDuration).filter {
            $0.dimensions.contains { $0 == (MessagingMetric.operationName, "recover_state") }
        }
        #expect(recoveries.flatMap(\.values).count == 1, "one recovery for the member's two partitions")
        let replayed = metrics.counters(label: MessagingMetric.recoveredEvents).map(\.totalValue).reduce(0, +)
        if withSnapshots {
            #expect(replayed > 0 && replayed < Ledger.eventCount(before), "the snapshots bound the replay")
        } else {
            #expect(replayed == Ledger.eventCount(before), "every event of the first run replayed once")
        }

        if withSnapshots {
            let snapshots = SnapshotStore(path: store, topic: changelog)
            try await snapshots.open()
            let stored = try await snapshots.load(0)
            await snapshots.close()
            #expect(stored.rows.count == 3, "partition 0 holds acct0, acct2 and acct4")
            #expect((stored.replayFrom ?? 0) > 0, "the snapshots bound the replay")
        }
    }

    /// A flow of the group `group` writing its outcomes to `balances`, started.
    static func start(
        _ kafka: TestCluster, input: String, changelog: String, group: String, transactionalId: String,
        into balances: Balances
    ) throws -> DrainingControl<Void> {
        let consumer = kafka.consumerSettings(group: group)
        return try Transactional.source(consumer, subscription: .topics(input))
            .via(
                EventSourced.flow(
                    Ledger.behavior, settings: .json(changelogTopic: changelog), consumerSettings: consumer,
                    producerSettings: kafka.producerSettings().withProperty("transaction.timeout.ms", "10000"),
                    transactionalId: transactionalId)
            )
            .to(Sinks.forEach { balances.add($0) })
            .start()
    }

    static func assignment(_ control: DrainingControl<Void>) async -> Set<TopicPartition> {
        (try? await control.control.withConsumer { try $0.assignment() }) ?? []
    }

    /// A member recovers the partitions it owns together, before their first input; one that
    /// moves to another member and back must not come back with the state recovered before
    /// it left: the other member wrote events for it meanwhile. On a Kafka broker only: the mock
    /// does not store transactional offsets, so after a rebalance its members read every input again.
    @Test(
        .enabled(
            if: TestClusterMode.isExternal,
            "the mock cluster does not store transactional offsets: needs KAFKA_BOOTSTRAP_SERVERS"))
    func aPartitionThatMovesAwayAndBackIsRecoveredWithWhatItsOtherOwnerWrote() async throws {
        let kafka = try TestCluster()
        let changelog = try kafka.createTopic("es-move-changelog", partitions: 3)
        let input = try kafka.createTopic("es-move-in", partitions: 3)
        let group = kafka.name("es-move-g")
        let balances = Balances()
        // Phase 1: member A alone, inputs of partition 0 only (acct0, acct3): A recovers all
        // three partitions at the first of them, partitions 1 and 2 ahead of any input.
        let first = Ledger.commands(60).filter { Int($0.key.dropFirst(4))! % 3 == 0 }
        try await Ledger.produce(kafka, input, first, partitions: 3)
        let a = try Self.start(
            kafka, input: input, changelog: changelog, group: group, transactionalId: kafka.name("es-move-a"),
            into: balances)
        try await balances.committed.waitFor(count: first.count)
        // Phase 2: member B joins and takes partition 2, or partitions 0 and 1 (range): one that A
        // recovered ahead. Inputs of every partition; B writes events to the partitions it owns.
        let b = try Self.start(
            kafka, input: input, changelog: changelog, group: group, transactionalId: kafka.name("es-move-b"),
            into: balances)
        let split = try await Eventually.within(.seconds(30)) {
            let (ofA, ofB) = (await Self.assignment(a), await Self.assignment(b))
            return !ofA.isEmpty && !ofB.isEmpty && ofA.count + ofB.count == 3
        }
        #expect(split, "the group splits the partitions between A and B")
        let second = Ledger.commands(90, from: 60)
        try await Ledger.produce(kafka, input, second, partitions: 3)
        try await balances.committed.waitFor(count: first.count + second.count)
        // Phase 3: B leaves, A owns every partition again and recovers B's from the changelog.
        try await b.drainAndShutdown()
        let whole = try await Eventually.within(.seconds(30)) { await Self.assignment(a).count == 3 }
        #expect(whole, "A owns every partition after B left")
        let third = Ledger.commands(90, from: 150)
        try await Ledger.produce(kafka, input, third, partitions: 3)
        try await balances.committed.waitFor(count: first.count + second.count + third.count)
        try await a.drainAndShutdown()
        #expect(balances.current == Ledger.reference(first + second + third))
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
