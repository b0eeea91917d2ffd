import Foundation
import GRDB
import ReactiveKafka
import ReactiveKafkaTestKit
import Testing

/// A table persisted in SQLite: rows and offsets in one file, checked on open.
@Suite struct PersistentTableTests {
    typealias Support = TableTestSupport

    @Test func aRestartLoadsTheFileAndReadsOnlyTheNewRecords() async throws {
        let kafka = try TestCluster()
        let topic = try kafka.createTopic("table-persistent", partitions: 3)
        let path = try Support.temporaryPath("customers.sqlite")
        let options = KafkaTableOptions(storage: .sqlite(path: path))
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: topic,
            records: (0..<120).map { (key: "k\($0 % 40)", value: "v\($0)") })

        let first = try KafkaTable(topic: topic, settings: Support.settings(kafka), options: options)
        let firstRun = try await Support.start(first)
        #expect(first.recordsRead == 120)
        #expect(first.count == 40)
        try await Support.stop(first, firstRun)

        try await Support.send(
            kafka, topic: topic, [(key: "k1", value: "changed"), (key: "k2", value: nil), (key: "k99", value: "new")])
        let second = try KafkaTable(topic: topic, settings: Support.settings(kafka), options: options)
        let secondRun = try await Support.start(second)
        #expect(second.recordsRead == 3)
        #expect(second.count == 40)
        #expect(second["k1"] == "changed")
        #expect(second["k2"] == nil)
        #expect(second["k99"] == "new")
        #expect(second["k39"] == "v119")
        try await Support.stop(second, secondRun)
    }

    @Test func aFileThatIsNotSQLiteIsACorruptStoreError() async throws {
        let kafka = try TestCluster()
        let topic = try kafka.createTopic("table-corrupt", partitions: 1)
        let path = try Support.temporaryPath("garbage.sqlite")
        try Data(repeating: 0x5A, count: 8192).write(to: URL(fileURLWithPath: path))
        let table = try KafkaTable(
            topic: topic, settings: Support.settings(kafka), options: KafkaTableOptions(storage: .sqlite(path: path)))
        let error = try await Support.failure(of: table)
        let tableError = try #require(
            error as? KafkaTableError, "expected a KafkaTableError, got \(String(describing: error))")
        #expect(tableError.kind == .corruptStore)
        #expect(tableError.message.contains(path))
        await #expect(throws: KafkaTableError.self) { try await table.ready() }
    }

    @Test func aDatabaseWrittenBySomethingElseIsAForeignStoreError() async throws {
        let kafka = try TestCluster()
        let topic = try kafka.createTopic("table-foreign", partitions: 1)
        let path = try Support.temporaryPath("app.sqlite")
        let other = try DatabaseQueue(path: path)
        try await other.write { db in try db.execute(sql: "CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        }
        try other.close()
        let table = try KafkaTable(
            topic: topic, settings: Support.settings(kafka), options: KafkaTableOptions(storage: .sqlite(path: path)))
        let error = try #require(try await Support.failure(of: table) as? KafkaTableError)
        #expect(error.kind == .foreignStore)
        #expect(error.message.contains("invoices"))
    }

    @Test func aFileOfAnotherTopicsTableIsAForeignStoreError() async throws {
        let kafka = try TestCluster()
        let first = try kafka.createTopic("table-first", partitions: 1)
        let second = try kafka.createTopic("table-second", partitions: 1)
        let path = try Support.temporaryPath("table.sqlite")
        let options = KafkaTableOptions(storage: .sqlite(path: path))
        let table = try KafkaTable(topic: first, settings: Support.settings(kafka), options: options)
        try await Support.stop(table, try await Support.start(table))

        let reuse = try KafkaTable(topic: second, settings: Support.settings(kafka), options: options)
        let error = try #require(try await Support.failure(of: reuse) as? KafkaTableError)
        #expect(error.kind == .foreignStore)
        #expect(error.message.contains(first) && error.message.contains(second))
    }
}
