import ReactiveKafka
import ReactiveKafkaTestKit
import Testing

/// A partition-aligned table holds the partitions its group member owns, following rebalances.
@Suite struct PartitionAlignedTableTests {
    typealias Support = TableTestSupport

    @Test(arguments: [false, true])
    func twoMembersSplitTheTableAndEachFollowsItsOwnPartitions(persistent: Bool) async throws {
        let kafka = try TestCluster()
        let topic = try kafka.createTopic("table-aligned", partitions: 4)
        let group = kafka.name("table-aligned-group")
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: topic,
            records: (0..<200).map { (key: "k\($0 % 40)", value: "v\($0)") })
        func member() throws -> KafkaTable<String, String> {
            let storage: KafkaTableOptions.Storage =
                persistent ? .sqlite(path: try Support.temporaryPath("member.sqlite")) : .memory
            return try KafkaTable(
                topic: topic, settings: Support.settings(kafka).withGroupId(group),
                options: KafkaTableOptions(scope: .partitionAligned, storage: storage))
        }
        let first = try member()
        let firstRun = try await Support.start(first)
        #expect(first.count == 40)

        let second = try member()
        let secondRun = try await Support.start(second)
        // After the rebalance each member holds only its partitions' keys: together all, none twice.
        try await Support.eventually { first.count > 0 && second.count > 0 && first.count + second.count == 40 }
        let a = first.snapshot()
        let b = second.snapshot()
        #expect(Set(a.keys).isDisjoint(with: b.keys))
        #expect(
            a.merging(b) { x, _ in x }
                == Dictionary(uniqueKeysWithValues: (160..<200).map { ("k\($0 % 40)", "v\($0)") }))

        // New records reach the member that owns their partition.
        try await Support.send(kafka, topic: topic, [(key: "k0", value: "moved"), (key: "k1", value: "moved")])
        try await Support.eventually { [first, second] in
            (first["k0"] ?? second["k0"]) == "moved" && (first["k1"] ?? second["k1"]) == "moved"
        }

        // The first leaves: the second takes its partitions back.
        try await Support.stop(first, firstRun)
        // A persistent store serves a returning partition's rows from disk at once, then catches
        // up from its stored offset: "moved" arrives after the count is complete.
        try await Support.eventually { second.count == 40 && second["k0"] == "moved" && second["k1"] == "moved" }
        try await Support.stop(second, secondRun)
    }

    @Test func aMemberWithoutPartitionsIsReadyWithAnEmptyTable() async throws {
        let kafka = try TestCluster()
        let topic = try kafka.createTopic("table-aligned-one", partitions: 1)
        let group = kafka.name("table-aligned-one-group")
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: topic,
            records: [(key: "a", value: "1"), (key: "b", value: "2")])
        let options = KafkaTableOptions(scope: .partitionAligned)
        let owner = try KafkaTable(topic: topic, settings: Support.settings(kafka).withGroupId(group), options: options)
        let ownerRun = try await Support.start(owner)
        let idle = try KafkaTable(topic: topic, settings: Support.settings(kafka).withGroupId(group), options: options)
        let idleRun = try await Support.start(idle)
        // One partition, two members: one of them holds it, the other is ready and empty.
        try await Support.eventually { owner.count + idle.count == 2 && (owner.count == 0 || idle.count == 0) }
        try await Support.stop(idle, idleRun)
        try await Support.stop(owner, ownerRun)
    }
}
