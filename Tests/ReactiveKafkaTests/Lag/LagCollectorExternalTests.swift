import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Testing

/// What the mock cluster cannot answer (ListGroups, DescribeGroups), asserted against a Kafka
/// broker (`KAFKA_BOOTSTRAP_SERVERS=host:port make test-external`): groups found by a pattern,
/// whether a group is a simple consumer group, and the member each partition is assigned to.
@Suite(.serialized, .enabled(if: TestClusterMode.isExternal, "needs a Kafka broker: KAFKA_BOOTSTRAP_SERVERS"))
struct LagCollectorExternalTests {
    @Test func patternsFindListedGroupsWithTheirMembers() async throws {
        let kafka = try TestCluster()
        let topic = try kafka.createTopic("lag-ext", partitions: 2)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: topic, records: (0..<20).map { (nil, "e\($0)") },
            roundRobinOver: 2)
        let simple = kafka.name("g-lag-ext-simple")
        let member = kafka.name("g-lag-ext-member")
        try await TestData.commit(
            bootstrapServers: kafka.bootstrapServers, group: simple, topic: topic, offsets: [0: 3, 1: 4])
        // A member that consumes everything and commits it, and stays in its group.
        let control = Consumer.committableSource(
            kafka.consumerSettings(group: member).withClientId("lag-ext-client"), subscription: .topics(topic)
        )
        .map(\.committableOffset)
        .to(Committer.sink(CommitterSettings().withMaxInterval(.milliseconds(50))))
        .start()

        let collector = try LagCollector(
            ConsumerSettings().withBootstrapServers(kafka.bootstrapServers),
            configuration: .init(
                groups: try NameFilter(["g-lag-ext-.*"]), topics: try NameFilter([topic]), interval: .milliseconds(200))
        )
        let running = Task { try await collector.run() }
        let status = await collector.firstStatus(within: .seconds(60)) { status in
            guard let snapshot = status.snapshot, let consuming = snapshot.group(member) else { return false }
            return snapshot.group(simple) != nil && consuming.sumLag == 0 && consuming.partitions.count == 2
                && consuming.partitions.allSatisfy { $0.member != nil }
        }
        running.cancel()
        _ = await running.result
        try await control.drainAndShutdown()

        let snapshot = try #require(
            status?.snapshot,
            "no round showed both groups, the member's commits and its assignment: \(collector.status)")
        let simpleLag = try #require(snapshot.group(simple))
        #expect(simpleLag.sumLag == 13)
        #expect(simpleLag.isSimpleConsumer == true)
        #expect(simpleLag.partitions.allSatisfy { $0.member == nil })
        let memberLag = try #require(snapshot.group(member))
        #expect(memberLag.isSimpleConsumer == false)
        #expect(
            memberLag.partitions.allSatisfy {
                $0.member?.clientId == "lag-ext-client" && !($0.member?.consumerId.isEmpty ?? true)
            })
        #expect(Set(memberLag.partitions.compactMap(\.member)).count == 1, "one member holds both partitions")
    }
}
