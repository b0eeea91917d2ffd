import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Testing

/// Stream–table and table–table joins.
@Suite struct TableJoinTests {
    typealias Support = TableTestSupport

    @Test func aStreamJoinEnrichesEachRecordWithItsKeysCurrentValue() async throws {
        let kafka = try TestCluster()
        let customers = try kafka.createTopic("join-customers", partitions: 2)
        let orders = try kafka.createTopic("join-orders", partitions: 2)
        try await Support.send(kafka, topic: customers, [(key: "c1", value: "Ada"), (key: "c2", value: "Grace")])
        try await Support.send(
            kafka, topic: orders,
            [(key: "c1", value: "o1"), (key: "c3", value: "o2"), (key: "c2", value: "o3"), (key: "c1", value: "o4")])
        let table = try KafkaTable(topic: customers, settings: Support.settings(kafka))
        let running = try await Support.start(table)

        let orderSettings = Support.settings(kafka)
        let fromStart: [TopicPartition: Int64] = [TopicPartition(orders, 0): 0, TopicPartition(orders, 1): 0]
        let inner = Consumer.plainSource(orderSettings, subscription: .assignmentWithOffset(fromStart))
            .join(table, key: { $0.key })
            .map { "\($0.record.value):\($0.value)" }
            .take(3)
        let joined = try #require(
            await BoundedWait.within(.seconds(30)) { () -> [String] in
                var out: [String] = []
                do { for try await line in inner { out.append(line) } } catch {}
                return out
            })
        #expect(Set(joined) == ["o1:Ada", "o3:Grace", "o4:Ada"])

        let left = Consumer.plainSource(orderSettings, subscription: .assignmentWithOffset(fromStart))
            .leftJoin(table, key: { $0.key })
            .map { "\($0.record.value):\($0.value ?? "-")" }
            .take(4)
        let leftJoined = try #require(
            await BoundedWait.within(.seconds(30)) { () -> [String] in
                var out: [String] = []
                do { for try await line in left { out.append(line) } } catch {}
                return out
            })
        #expect(Set(leftJoined) == ["o1:Ada", "o2:-", "o3:Grace", "o4:Ada"])
        try await Support.stop(table, running)
    }

    @Test func aTableJoinUpdatesWhenEitherSideChanges() async throws {
        let kafka = try TestCluster()
        let names = try kafka.createTopic("join-names", partitions: 1)
        let cities = try kafka.createTopic("join-cities", partitions: 1)
        try await Support.send(kafka, topic: names, [(key: "c1", value: "Ada"), (key: "c2", value: "Grace")])
        try await Support.send(kafka, topic: cities, [(key: "c1", value: "London")])
        let nameTable = try KafkaTable(topic: names, settings: Support.settings(kafka))
        let cityTable = try KafkaTable(topic: cities, settings: Support.settings(kafka))
        let runningNames = try await Support.start(nameTable)
        let runningCities = try await Support.start(cityTable)

        let joined = nameTable.join(cityTable) { name, city in "\(name)@\(city)" }
        let leftJoined = nameTable.leftJoin(cityTable) { name, city in "\(name)@\(city ?? "?")" }
        #expect(joined.snapshot() == ["c1": "Ada@London"])
        #expect(leftJoined.snapshot() == ["c1": "Ada@London", "c2": "Grace@?"])

        let changes = joined.changes()
        try await Support.send(kafka, topic: cities, [(key: "c2", value: "Arlington")])
        let fromRight = try await Support.collect(changes) { $0.contains { $0.key == "c2" } }
        #expect(fromRight.last?.oldValue == nil)
        #expect(fromRight.last?.newValue == "Grace@Arlington")

        try await Support.send(kafka, topic: names, [(key: "c1", value: "Augusta")])
        let fromLeft = try await Support.collect(changes) { $0.contains { $0.key == "c1" } }
        #expect(fromLeft.last?.oldValue == "Ada@London")
        #expect(fromLeft.last?.newValue == "Augusta@London")
        #expect(joined["c1"] == "Augusta@London")

        try await Support.send(kafka, topic: cities, [(key: "c1", value: nil)])
        let deleted = try await Support.collect(changes) { $0.contains { $0.key == "c1" } }
        #expect(deleted.last?.newValue == nil)
        #expect(joined.snapshot() == ["c2": "Grace@Arlington"])

        try await Support.stop(cityTable, runningCities)
        // One side closing ends the joined changes.
        #expect(try await Support.collect(changes) { _ in true }.isEmpty)
        try await Support.stop(nameTable, runningNames)
    }
}
