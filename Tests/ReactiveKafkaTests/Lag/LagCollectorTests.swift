import ReactiveKafka
import ReactiveKafkaTestKit
import Synchronization
import Testing

/// The collector against the embedded cluster: committed offsets and end offsets read through
/// librdkafka, lag computed, failures bounded by the round's timeout.
@Suite(.serialized) struct LagCollectorTests {
    static func collector(
        _ servers: String, groups: [String], topics: [String] = [], interval: Duration = .milliseconds(200),
        timeout: Duration = .seconds(5)
    ) throws -> LagCollector {
        let settings = ConsumerSettings().withBootstrapServers(servers).withProperty("log_level", "0")
        return try LagCollector(
            settings,
            configuration: .init(
                groups: try NameFilter(groups), topics: try NameFilter(topics), interval: interval, timeout: timeout))
    }

    @Test func readsAGroupsLagByItsLiteralName() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("lag-orders", partitions: 3)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "lag-orders", records: (0..<30).map { (nil, "o\($0)") },
            roundRobinOver: 3)
        try await TestData.commit(
            bootstrapServers: kafka.bootstrapServers, group: "g-lag", topic: "lag-orders", offsets: [0: 4, 1: 10, 2: 0])
        let collector = try Self.collector(kafka.bootstrapServers, groups: ["g-lag", "nobody"], topics: ["lag-.*"])

        let first = await collector.collect()
        #expect(first.error == nil)
        let snapshot = try #require(first.snapshot)
        #expect(snapshot.groups.map(\.name) == ["g-lag"], "a named group without commits has no series")
        let group = try #require(snapshot.group("g-lag"))
        #expect(group.partitions.map(\.lag) == [6, 0, 10])
        #expect(group.partitions.map(\.committedOffset) == [4, 10, 0])
        #expect(group.sumLag == 16)
        #expect(snapshot.partitions.map(\.latest) == [10, 10, 10])
        #expect(snapshot.partitions.map(\.earliest) == [0, 0, 0])

        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "lag-orders", records: (0..<5).map { (nil, "late\($0)") },
            partition: 2)
        let second = await collector.collect()
        let p2 = try #require(second.snapshot?.group("g-lag")?.partitions.last)
        #expect(p2.lag == 15)
        // The commit (0) is older than the window (ends 10, then 15): extrapolated from its rate.
        guard case .extrapolated(let seconds) = p2.timeLag else {
            Issue.record("expected an extrapolated lag in time, got \(p2.timeLag)")
            return
        }
        #expect(seconds > 0)
        // Partition 0 has ended at 10 since the first round: the group at 4 is behind by at least the time between the rounds.
        let between = try #require(second.snapshot?.time) - snapshot.time
        #expect(
            second.snapshot?.group("g-lag")?.partitions.first?.timeLag == .atLeast(seconds: between.inSecondsForTest))
    }

    @Test func aTopicFilterLeavesOtherTopicsOut() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("watched", partitions: 1)
        try kafka.createTopic("ignored", partitions: 1)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "ignored", records: [(nil, "x")], partition: 0)
        try await TestData.commit(
            bootstrapServers: kafka.bootstrapServers, group: "g-filter", topic: "ignored", offsets: [0: 0])
        let status = await (try Self.collector(kafka.bootstrapServers, groups: ["g-filter"], topics: ["watched"]))
            .collect()
        #expect(status.isUp)
        #expect(status.snapshot?.groups.isEmpty == true)
        let all = await (try Self.collector(kafka.bootstrapServers, groups: ["g-filter"])).collect()
        #expect(all.snapshot?.group("g-filter")?.sumLag == 1)
    }

    @Test func patternsNeedAClusterThatListsGroups() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("listed", partitions: 1)
        let status = await (try Self.collector(kafka.bootstrapServers, groups: ["g-.*"])).collect()
        #expect(!status.isUp)
        #expect(status.error?.kind == .invalidConfiguration)
        #expect(status.error?.message.contains("literal group names") == true, "\(String(describing: status.error))")
    }

    @Test func anUnreachableClusterFailsTheRoundWithinItsTimeout() async throws {
        let collector = try Self.collector("127.0.0.1:1", groups: ["g"], timeout: .seconds(1))
        let started = ContinuousClock.now
        let status = await collector.collect()
        let elapsed = ContinuousClock.now - started
        #expect(!status.isUp)
        #expect(status.snapshot == nil)
        #expect(status.error?.kind == .brokerUnreachable, "\(String(describing: status.error))")
        #expect(status.problem(at: .now, maxAge: .seconds(60))?.contains("failed") == true)
        // The 1 s timeout plus scheduling room on a loaded machine.
        #expect(elapsed < .seconds(5), "the round ended with its timeout, took \(elapsed)")
    }

    @Test func aBrokerGoingDownTurnsTheCollectorDownThenItRecovers() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("flaky", partitions: 1)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "flaky", records: [(nil, "a"), (nil, "b")], partition: 0)
        try await TestData.commit(
            bootstrapServers: kafka.bootstrapServers, group: "g-flaky", topic: "flaky", offsets: [0: 1])
        let collector = try Self.collector(kafka.bootstrapServers, groups: ["g-flaky"], timeout: .seconds(1))
        #expect(await collector.collect().snapshot?.group("g-flaky")?.sumLag == 1)

        try kafka.brokerDown(1)
        let down = await collector.collect()
        #expect(!down.isUp)
        #expect(down.snapshot == nil, "no stale lag while the cluster cannot be read")
        #expect(down.lastSuccess != nil)

        try kafka.brokerUp(1)
        var recovered = await collector.collect()
        // The client reconnects with a back-off: allow a few rounds.
        for _ in 0..<10 where !recovered.isUp { recovered = await collector.collect() }
        #expect(recovered.snapshot?.group("g-flaky")?.sumLag == 1)
        #expect(recovered.rounds >= 3)
    }

    @Test func runCollectsUntilCancelledAndThenEndsItsStatuses() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("running", partitions: 1)
        let collector = try Self.collector(kafka.bootstrapServers, groups: ["g-run"], interval: .milliseconds(50))
        let statuses = collector.statuses()
        let running = Task { try await collector.run() }
        let seen = Atomic<Int>(0)
        let ended = Task {
            for await _ in statuses { seen.add(1, ordering: .relaxed) }
        }
        let two = await collector.firstStatus(within: .seconds(10)) { $0.rounds >= 2 }
        #expect(two?.isUp == true)
        running.cancel()
        #expect(
            await BoundedWait.within(.seconds(10)) { _ = await running.result } != nil,
            "run() returned after cancellation")
        #expect(await BoundedWait.within(.seconds(10)) { await ended.value } != nil, "the statuses stream finished")
        #expect(seen.load(ordering: .relaxed) >= 2)
        // Its client is closed: a second run is refused at once, saying so.
        await #expect {
            try await collector.run()
        } throws: { error in
            (error as? KafkaError)?.kind == .illegalState && "\(error)".contains("a collector runs once")
        }
    }
}

extension Duration {
    var inSecondsForTest: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
