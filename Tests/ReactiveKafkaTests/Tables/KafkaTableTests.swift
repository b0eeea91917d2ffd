import Logging
import ReactiveKafka
import ReactiveKafkaTestKit
import ServiceLifecycle
import Testing

/// A global in-memory table: restored from its topic, then kept current.
@Suite struct KafkaTableTests {
    typealias Support = TableTestSupport

    @Test func restoresTheLatestValueOfEachKeyThenFollowsNewRecords() async throws {
        let kafka = try TestCluster()
        let topic = try kafka.createTopic("table-restore", partitions: 3)
        // Keys hash to partitions, so each key's records keep their order.
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: topic,
            records: (0..<300).map { (key: "k\($0 % 10)", value: "v\($0)") })
        let table = try KafkaTable(topic: topic, settings: Support.settings(kafka))
        let running = try await Support.start(table)

        #expect(table.count == 10)
        #expect(table.recordsRead == 300)
        for k in 0..<10 { #expect(table["k\(k)"] == "v\(290 + k)") }

        let changes = table.changes()
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: topic,
            records: [(key: "k3", value: "new"), (key: "k10", value: "added")])
        _ = try await Support.collect(changes) { seen in Set(seen.map(\.key)) == ["k3", "k10"] }
        #expect(table["k3"] == "new")
        #expect(table["k10"] == "added")
        #expect(table.count == 11)
        try await Support.stop(table, running)
    }

    @Test func aTombstoneDeletesItsKeyDuringTheRestoreAndAfter() async throws {
        let kafka = try TestCluster()
        let topic = try kafka.createTopic("table-tombstones", partitions: 2)
        try await Support.send(
            kafka, topic: topic,
            [(key: "a", value: "1"), (key: "b", value: "2"), (key: "a", value: nil), (key: "c", value: nil)])
        let table = try KafkaTable(topic: topic, settings: Support.settings(kafka))
        let running = try await Support.start(table)
        #expect(table.snapshot() == ["b": "2"])

        let changes = table.changes()
        try await Support.send(kafka, topic: topic, [(key: "b", value: nil)])
        let seen = try await Support.collect(changes) { !$0.isEmpty }
        #expect(seen.first?.key == "b")
        #expect(seen.first?.oldValue == "2")
        #expect(seen.first?.newValue == nil)
        #expect(table["b"] == nil)
        #expect(table.count == 0)
        try await Support.stop(table, running)
    }

    /// Every round sets k0…k9 to the round's number in one partition, in key order, so
    /// any prefix of the log leaves values that never rise along the keys and differ by at
    /// most one: a snapshot showing anything else mixed states.
    @Test func everySnapshotIsTheStateAfterSomePrefixOfTheLog() async throws {
        let kafka = try TestCluster()
        let topic = try kafka.createTopic("table-snapshots", partitions: 1)
        let table = try KafkaTable(
            topic: topic, settings: Support.settings(kafka), options: KafkaTableOptions(maxBatchRecords: 7))
        let running = try await Support.start(table)
        let writer = Task {
            try await TestData.produce(
                bootstrapServers: kafka.bootstrapServers, topic: topic,
                records: (0..<200).flatMap { round in (0..<10).map { (key: "k\($0)", value: "\(round)") } })
        }
        var snapshots = 0
        while true {
            let snapshot = table.snapshot()
            let values = (0..<10).map { snapshot["k\($0)"].flatMap { Int($0) } ?? -1 }
            let ordered = zip(values, values.dropFirst()).allSatisfy { $0 >= $1 }
            #expect(ordered && values[0] - values[9] <= 1, "snapshot \(values) mixes states")
            snapshots += 1
            if values[9] == 199 { break }
            await Task.yield()
            if snapshots > 5_000_000 {
                Issue.record("the table never reached the last round")
                break
            }
        }
        try await writer.value
        try await Support.stop(table, running)
    }

    @Test func changesFollowEachKeyAndASlowReaderGetsEachKeysLatestValueOnce() async throws {
        let kafka = try TestCluster()
        let topic = try kafka.createTopic("table-changes", partitions: 1)
        try await Support.send(kafka, topic: topic, [(key: "x", value: "0")])
        let table = try KafkaTable(topic: topic, settings: Support.settings(kafka))
        let running = try await Support.start(table)

        let fast = table.changes()
        let slow = table.changes()
        try await Support.send(
            kafka, topic: topic,
            [
                (key: "x", value: "1"), (key: "y", value: "a"), (key: "x", value: "2"), (key: "x", value: "3"),
                (key: "y", value: nil),
            ])
        // The fast reader sees every change in order (a batch may already conflate some).
        let seenFast = try await Support.collect(fast) { seen in
            seen.contains { $0.key == "y" && $0.newValue == nil }
                && seen.last(where: { $0.key == "x" })?.newValue == "3"
        }
        #expect(seenFast.filter { $0.key == "x" }.last?.newValue == "3")
        // The slow reader, reading only now, gets one change per key: from its old value to its latest.
        let seenSlow = try await Support.collect(slow) { $0.count == 2 }
        #expect(seenSlow.map(\.key) == ["x", "y"])
        #expect(seenSlow[0].oldValue == "0" && seenSlow[0].newValue == "3")
        #expect(seenSlow[1].oldValue == nil && seenSlow[1].newValue == nil)
        try await Support.stop(table, running)
    }

    @Test func closeEndsTheRunTheChangesAndAWaitingReady() async throws {
        let kafka = try TestCluster()
        let topic = try kafka.createTopic("table-close", partitions: 1)
        let table = try KafkaTable(topic: topic, settings: Support.settings(kafka))
        let running = try await Support.start(table)
        let changes = table.changes()
        try await Support.stop(table, running)
        let seen = try await Support.collect(changes) { _ in true }.count
        #expect(seen == 0)
        await #expect(throws: KafkaTableError.self) { try await table.run() }
    }

    @Test func aGracefulShutdownOfItsServiceGroupEndsTheTable() async throws {
        let kafka = try TestCluster()
        let topic = try kafka.createTopic("table-service", partitions: 2)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: topic, records: [(key: "a", value: "1")])
        let table = try KafkaTable(topic: topic, settings: Support.settings(kafka))
        let group = ServiceGroup(services: [table], logger: Logger(label: "test"))
        let running = Task { try await group.run() }
        try await Support.ready(table)
        #expect(table["a"] == "1")
        let changes = table.changes()
        // What SIGTERM does.
        await group.triggerGracefulShutdown()
        let ended = await BoundedWait.within(.seconds(30)) { () -> Result<Void, any Error> in
            do {
                try await running.value
                return .success(())
            } catch { return .failure(error) }
        }
        try #require(ended, "the service group did not end within 30 s").get()
        #expect(try await Support.collect(changes) { _ in true }.isEmpty)
    }
}
