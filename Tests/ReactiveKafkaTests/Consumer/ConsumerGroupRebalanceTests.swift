import Foundation
import ReactiveKafkaTestKit
import StreamKit
import Synchronization
import Testing

@testable import ReactiveKafka

/// Several members of one group, in one process, joining and leaving while
/// records flow: with rebalance-safe commits and graceful changes, every
/// record is processed exactly once.
@Suite(.serialized) struct ConsumerGroupRebalanceTests {
    enum Strategy: String, CaseIterable, Sendable {
        case eager = "range"
        case cooperative = "cooperative-sticky"
    }

    /// A running member: its draining control.
    struct Member {
        let name: String
        let drain: @Sendable () async throws -> Void
    }

    /// The kind of source each member runs.
    enum Shape: String, CaseIterable, Sendable {
        /// `committableSource` → `Committer.sink`.
        case plain
        /// `committablePartitionedSource`, a committer per partition's sub-stream.
        case partitioned
        /// `Transactional.source` → `Transactional.flow` to an output topic (one transactional id per member).
        case transactional
        /// `Transactional.partitionedSource`, its sub-streams merged into one `Transactional.flow`.
        case transactionalPartitioned

        var isTransactional: Bool { self == .transactional || self == .transactionalPartitioned }
    }

    static let partitions: Int32 = 12
    static let records = 100_000

    /// One run's cluster, topics and group (unique per run on an external cluster).
    struct Setup: Sendable {
        let kafka: TestCluster
        let topic: String
        let group: String
        /// Where transactional members write `<partition>:<offset>` of each record they process.
        var output: String = ""
        /// Partitions any member lost: a session that expired is not a graceful change.
        let lost = LostPartitions()

        /// The topic, with ``lost`` told of every lost partition.
        var subscription: Subscription { .topics(topic).withPartitionAssignmentHandler(lost) }
    }

    /// Counts partitions members lost (their session expired, say on a starved machine), so a
    /// run whose changes were not all graceful says so next to the duplicates it caused.
    final class LostPartitions: PartitionAssignmentHandler {
        private let partitions = Mutex<[TopicPartition]>([])
        var all: [TopicPartition] { partitions.withLock { $0 } }
        func onLost(_ lost: Set<TopicPartition>, consumer: RestrictedConsumer) {
            partitions.withLock { $0.append(contentsOf: lost) }
        }
    }

    static func settings(_ setup: Setup, strategy: Strategy) -> ConsumerSettings<KafkaBytes, KafkaBytes> {
        ConsumerSettings()
            .withBootstrapServers(setup.kafka.bootstrapServers)
            .withGroupId(setup.group)
            .withProperty("auto.offset.reset", "earliest")
            .withProperties(setup.kafka.groupProperties)
            .withProperty("partition.assignment.strategy", strategy.rawValue)
            .withMaxBatchSize(200)
    }

    /// Processing that takes time, so that records still flow while members come and go.
    @Sendable static func process(_ offset: Int64) async throws {
        if offset % 25 == 0 { try await Task.sleep(for: .milliseconds(10)) }
    }

    static func plainMember(_ name: String, _ setup: Setup, _ strategy: Strategy, _ ledger: OffsetLedger) -> Member {
        let control = Consumer.committableSource(
            settings(setup, strategy: strategy), subscription: setup.subscription
        )
        .map { message in
            try await process(message.record.offset)
            ledger.record(message.committableOffset.partitionOffset.topicPartition, message.record.offset, by: name)
            return message.committableOffset
        }
        .to(Committer.sink(CommitterSettings()))
        .start()
        return Member(name: name) { _ = try await control.drainAndShutdown() }
    }

    static func partitionedMember(_ name: String, _ setup: Setup, _ strategy: Strategy, _ ledger: OffsetLedger)
        -> Member
    {
        let source = Consumer.committablePartitionedSource(
            settings(setup, strategy: strategy), subscription: setup.subscription)
        let stream = Task {
            // Each partition's sub-stream runs in its own task, committing through its own committer.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for try await assigned in source {
                    let subStream = assigned.source
                    group.addTask {
                        try await subStream
                            .map { message in
                                try await process(message.record.offset)
                                ledger.record(
                                    message.committableOffset.partitionOffset.topicPartition, message.record.offset,
                                    by: name)
                                return message.committableOffset
                            }
                            .run(into: Committer.sink(CommitterSettings()))
                    }
                }
                try await group.waitForAll()
            }
        }
        return Member(name: name) { try await source.materialized.drainAndShutdown(stream) }
    }

    /// Writes `<partition>:<offset>` of each record to the output topic in transactions that
    /// carry its offsets: exactly-once shows as each record once in the output's committed records.
    static func transactionalMember(_ name: String, _ setup: Setup, _ strategy: Strategy, _ ledger: OffsetLedger)
        -> Member
    {
        let flow = Transactional.flow(
            setup.kafka.producerSettings().withProperty("transaction.timeout.ms", "10000"),
            transactionalId: "\(setup.group)-\(name)", eosCommitInterval: .milliseconds(100))
        let control = Transactional.source(settings(setup, strategy: strategy), subscription: setup.subscription)
            .map { message in
                try await process(message.record.offset)
                let partition = TopicPartition(setup.topic, message.record.partition)
                ledger.record(partition, message.record.offset, by: name)
                return ProducerMessage<String, String, TransactionalOffset>.single(
                    ProducerRecord(topic: setup.output, value: "\(message.record.partition):\(message.record.offset)"),
                    passThrough: message.partitionOffset)
            }
            .via(flow)
            .to(Sinks.ignore())
            .start()
        return Member(name: name) { _ = try await control.drainAndShutdown() }
    }

    static func transactionalPartitionedMember(
        _ name: String, _ setup: Setup, _ strategy: Strategy, _ ledger: OffsetLedger
    ) -> Member {
        let source = Transactional.partitionedSource(
            settings(setup, strategy: strategy), subscription: setup.subscription)
        let flow = Transactional.flow(
            setup.kafka.producerSettings().withProperty("transaction.timeout.ms", "10000"),
            transactionalId: "\(setup.group)-\(name)", eosCommitInterval: .milliseconds(100))
        let stream = Task {
            let merge = DynamicMerge<ProducerMessage<String, String, TransactionalOffset>>(bufferSize: 64)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { for try await _ in merge.elements.via(flow) {} }
                for try await assigned in source {
                    let subStream = assigned.source
                    merge.add(
                        subStream.map { message in
                            try await process(message.record.offset)
                            ledger.record(
                                TopicPartition(setup.topic, message.record.partition), message.record.offset, by: name)
                            return .single(
                                ProducerRecord(
                                    topic: setup.output, value: "\(message.record.partition):\(message.record.offset)"),
                                passThrough: message.partitionOffset)
                        })
                }
                merge.finish()
                try await group.waitForAll()
            }
        }
        return Member(name: name) { try await source.materialized.drainAndShutdown(stream) }
    }

    /// What a run saw: membership changes made, records processed twice (and of those, how
    /// many by the same member twice), records never processed.
    struct Outcome {
        var changes: Int
        var duplicates: Int
        var duplicatesBySameMember: Int
        var missing: Int
        /// Partitions members lost instead of giving them up gracefully.
        var lost: [TopicPartition]
    }

    /// Five membership changes (three joins, two graceful leaves) while 100,000 records flow.
    @discardableResult
    func run(strategy: Strategy, shape: Shape) async throws -> Outcome {
        let kafka = try TestCluster()
        var setup = Setup(
            kafka: kafka, topic: try kafka.createTopic("rb", partitions: Int(Self.partitions)),
            group: kafka.name("g-rebalance"))
        if shape.isTransactional { setup.output = try kafka.createTopic("rb-out", partitions: Int(Self.partitions)) }
        let input = (0..<Self.records).map { (key: nil as String?, value: "v\($0)") }
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: setup.topic, records: input,
            roundRobinOver: Self.partitions)
        let end = Dictionary(
            uniqueKeysWithValues: (0..<Self.partitions).map {
                (
                    TopicPartition(setup.topic, $0),
                    Int64(Self.records) / Int64(Self.partitions)
                        + (Int64($0) < Int64(Self.records) % Int64(Self.partitions) ? 1 : 0)
                )
            })
        let ledger = OffsetLedger()
        let start = { [setup] (name: String) in
            switch shape {
            case .plain: Self.plainMember(name, setup, strategy, ledger)
            case .partitioned: Self.partitionedMember(name, setup, strategy, ledger)
            case .transactional: Self.transactionalMember(name, setup, strategy, ledger)
            case .transactionalPartitioned: Self.transactionalPartitionedMember(name, setup, strategy, ledger)
            }
        }
        var members: [String: Member] = [:]
        var changes = 0
        func step(atDistinct count: Int, _ change: () async throws -> Void) async throws {
            #expect(
                await ledger.waitFor(distinct: count),
                "stalled at \(ledger.distinct) records before change \(changes + 1)")
            try await change()
            changes += 1
        }

        members["a"] = start("a")
        try await step(atDistinct: 8_000) { members["b"] = start("b") }
        try await step(atDistinct: 22_000) { members["c"] = start("c") }
        try await step(atDistinct: 38_000) { try await members.removeValue(forKey: "a")!.drain() }
        try await step(atDistinct: 52_000) { members["d"] = start("d") }
        try await step(atDistinct: 66_000) { try await members.removeValue(forKey: "b")!.drain() }
        let flowedUntilTheLastChange = ledger.distinct < Self.records
        #expect(
            await ledger.waitFor(distinct: Self.records, timeout: .seconds(90)),
            "only \(ledger.distinct) of \(Self.records) records processed")
        for (_, member) in members { try await member.drain() }

        #expect(changes >= 5)
        #expect(flowedUntilTheLastChange, "records were still flowing at every membership change")
        let missing = ledger.missing(end)
        #expect(missing.count == 0, "lost \(missing.count) records, e.g. \(missing.prefix(5))")
        // librdkafka's mock coordinator refuses commits while a rebalance gathers its members
        // (REBALANCE_IN_PROGRESS; a Kafka broker accepts them from the current generation), so the
        // staying members' revoke-time commits cannot land there and some records are read again:
        // at-least-once is what this cluster can show. Zero duplicates with rebalance-safe commits
        // are shown by `rebalanceSafeCommitsLeaveNothingToReprocess`, where the coordinator accepts them.
        var outcome = Outcome(
            changes: changes, duplicates: ledger.duplicates.count,
            duplicatesBySameMember: ledger.duplicatesBySameMember.count, missing: missing.count,
            lost: setup.lost.all)
        if shape.isTransactional {
            // Exactly-once is what the transactions committed: each record once in the output,
            // whatever an aborted transaction made a member process again.
            let written = try await TopicReader.allValues(
                topic: setup.output, partitions: Self.partitions, bootstrapServers: kafka.bootstrapServers,
                isolation: .readCommitted)
            let distinct = Set(written)
            let expected = Set(end.flatMap { partition, count in (0..<count).map { "\(partition.partition):\($0)" } })
            print(
                "\(strategy) rebalancing, \(shape) sources: \(outcome.duplicates) records processed twice (aborted transactions replayed)"
            )
            outcome.duplicates = written.count - distinct.count
            outcome.duplicatesBySameMember = 0
            let absent = expected.subtracting(distinct)
            outcome.missing = absent.count
            #expect(
                outcome.missing == 0,
                "\(outcome.missing) records missing from the output: \(Self.ranges(of: absent).prefix(10).joined(separator: ", "))"
            )
        }
        print(
            "\(strategy) rebalancing, \(shape) sources, \(kafka.isExternal ? "external" : "embedded") cluster, \(changes) membership changes: \(outcome.duplicates) of \(Self.records) records processed twice (\(outcome.duplicatesBySameMember) by the same member), \(outcome.missing) lost\(outcome.duplicates == 0 ? "" : "; twice: " + ledger.duplicateRanges().prefix(10).joined(separator: ", "))"
        )
        return outcome
    }

    /// `partition:offset` values as runs, `3:120-179`, by partition and offset.
    static func ranges(of values: Set<String>) -> [String] {
        let pairs = values.compactMap { value -> (Int, Int)? in
            let parts = value.split(separator: ":")
            guard parts.count == 2, let p = Int(parts[0]), let o = Int(parts[1]) else { return nil }
            return (p, o)
        }.sorted { $0 < $1 }
        var runs: [(partition: Int, first: Int, last: Int)] = []
        for (p, o) in pairs {
            if let run = runs.last, run.partition == p, run.last + 1 == o {
                runs[runs.count - 1].last = o
            } else {
                runs.append((p, o, o))
            }
        }
        return runs.map { "\($0.partition):\($0.first)-\($0.last)" }
    }

    /// (Transactional shapes are external-only: the mock does not store transactional offsets, so
    /// a partition's next owner would start from the beginning.)
    @Test(arguments: [Shape.plain, .partitioned])
    func membershipChangesWhileRecordsFlowLoseNothing(shape: Shape) async throws {
        try await run(strategy: .eager, shape: shape)
    }

    /// On a Kafka broker, which accepts commits from the current generation while a
    /// rebalance gathers its members, rebalance-safe commits make every graceful membership
    /// change exact, eager or cooperative: no record processed twice, none lost; transactional
    /// sources commit each record's result exactly once. (The embedded mock refuses those
    /// commits, mishandles cooperative-sticky and does not store transactional offsets.)
    @Test(
        .enabled(if: TestClusterMode.isExternal, "needs a Kafka broker: KAFKA_BOOTSTRAP_SERVERS"),
        arguments: Strategy.allCases, Shape.allCases)
    func gracefulMembershipChangesProcessEveryRecordOnce(strategy: Strategy, shape: Shape) async throws {
        let outcome = try await run(strategy: strategy, shape: shape)
        #expect(outcome.changes >= 5)
        #expect(outcome.missing == 0)
        let lostNote =
            outcome.lost.isEmpty
            ? "" : "; members lost \(outcome.lost.sorted()) (sessions expired: not a graceful change)"
        #expect(
            outcome.duplicates == 0,
            "\(outcome.duplicates) records processed twice, \(outcome.duplicatesBySameMember) of them by the same member\(lostNote)"
        )
    }

    /// A member rejoins on its own (its pattern subscription matches a new topic), so the
    /// group is stable when it revokes: the coordinator accepts the revoke's commits.
    func rejoinAfterNewTopic(rebalanceSafe: Bool) async throws -> (duplicates: Int, missing: Int) {
        let kafka = try TestCluster()
        // A pattern subscription: both topics share this run's prefix.
        let prefix = kafka.name("rsc")
        let first = prefix + "-1"
        try kafka.createTopic(named: first, partitions: 4)
        let records = 20_000
        let input = (0..<records).map { (key: nil as String?, value: "v\($0)") }
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: first, records: input, roundRobinOver: 4)
        let ledger = OffsetLedger()
        let events = Locked<[RebalanceEvent]>([])
        let settings = Self.settings(Setup(kafka: kafka, topic: first, group: kafka.name("g-rsc")), strategy: .eager)
            .withRebalanceSafeCommitTimeout(rebalanceSafe ? .seconds(10) : nil)
        let graph = Consumer.committableSource(settings, subscription: .topicPattern("^\(prefix)-.*"))
            .map { message in
                try await Self.process(message.record.offset)
                ledger.record(message.committableOffset.partitionOffset.topicPartition, message.record.offset)
                return message.committableOffset
            }
            // Commits rarely on their own: only the revoke makes the committer commit early.
            .to(Committer.sink(CommitterSettings().withMaxBatch(100_000).withMaxInterval(.seconds(60))))
        let control = graph.start()
        let observer = Task {
            for await event in control.control.rebalanceEvents() { events.withLock { $0.append(event) } }
        }
        #expect(await ledger.waitFor(distinct: 5_000))
        try kafka.createTopic(named: prefix + "-2", partitions: 1)
        #expect(await ledger.waitFor(distinct: records, timeout: .seconds(60)))
        _ = try await control.drainAndShutdown()
        await observer.value
        let seen = events.withLock { $0 }
        #expect(
            seen.contains { if case .revoked = $0 { return true } else { return false } },
            "the member rejoined: \(seen)")
        let end = Dictionary(
            uniqueKeysWithValues: (0..<4).map { (TopicPartition(first, Int32($0)), Int64(records / 4)) })
        return (ledger.duplicates.count, ledger.missing(end).count)
    }

    @Test func rebalanceSafeCommitsLeaveNothingToReprocess() async throws {
        let safe = try await rejoinAfterNewTopic(rebalanceSafe: true)
        #expect(safe.missing == 0)
        #expect(safe.duplicates == 0, "with rebalance-safe commits the revoke commits every emitted record")
        // The same rejoin without them: records emitted but not yet committed are read again.
        let unsafe = try await rejoinAfterNewTopic(rebalanceSafe: false)
        #expect(unsafe.missing == 0)
        #expect(unsafe.duplicates > 0, "without rebalance-safe commits the next owner re-reads uncommitted records")
    }

    /// A member draining (`drainAndShutdown`: its source stopped, records still in flight to its
    /// committer) is revoked by a member joining: the revoke waits for those records' commits, as
    /// it does while the source runs. It did not (the engine waited only while running), and the
    /// new owner read them again: 2,111 of 100,000 once in the membership test above.
    /// External-only: the mock refuses commits during a rebalance.
    @Test(.enabled(if: TestClusterMode.isExternal, "needs a Kafka broker: KAFKA_BOOTSTRAP_SERVERS"))
    func aRevokeWhileAMemberDrainsWaitsForItsCommits() async throws {
        let kafka = try TestCluster()
        let partitions: Int32 = 4
        let records = 4_000
        let setup = Setup(
            kafka: kafka, topic: try kafka.createTopic("rb-drain", partitions: Int(partitions)),
            group: kafka.name("g-rb-drain"))
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: setup.topic,
            records: (0..<records).map { (key: nil as String?, value: "v\($0)") }, roundRobinOver: partitions)
        let end = Dictionary(
            uniqueKeysWithValues: (0..<partitions).map {
                (TopicPartition(setup.topic, $0), Int64(records) / Int64(partitions))
            })
        let ledger = OffsetLedger()
        let first = Consumer.committableSource(
            Self.settings(setup, strategy: .eager), subscription: .topics(setup.topic))
        // Each record spends 3 s in flight; the committer commits only when asked (a revoke, the end).
        let firstControl =
            first
            .mapAsync(parallelism: 200) { message in
                try await Task.sleep(for: .seconds(3))
                ledger.record(message.committableOffset.partitionOffset.topicPartition, message.record.offset, by: "a")
                return message.committableOffset
            }
            .to(Committer.sink(CommitterSettings().withMaxBatch(100_000).withMaxInterval(.seconds(60))))
            .start()
        #expect(await ledger.waitFor(distinct: 200))
        // Draining: the source stops with up to 200 records still in the slow stage.
        let drain = Task { _ = try await firstControl.drainAndShutdown() }
        // A member joins meanwhile: the draining member's partitions are revoked.
        let second = Self.plainMember("b", setup, .eager, ledger)
        try await drain.value
        #expect(
            await ledger.waitFor(distinct: records, timeout: .seconds(60)),
            "only \(ledger.distinct) of \(records) records processed")
        try await second.drain()
        let missing = ledger.missing(end)
        #expect(missing.isEmpty, "lost \(missing.count)")
        #expect(
            ledger.duplicates.isEmpty,
            "\(ledger.duplicates.count) records processed twice: \(ledger.duplicateRanges().prefix(5))")
    }
}
