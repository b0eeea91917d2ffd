import Foundation
import GRDB
import Synchronization

/// A store that keeps the rows in memory for look-ups and in a SQLite file for restarts.
///
/// Each batch writes its rows and the offsets it reached in one SQLite transaction, so
/// the file always holds the rows as of the offsets it records: a restart loads them and
/// reads only what was written since. SQLite's calls block, so they run on the store's
/// own thread, never on Swift's cooperative pool. A revoked partition leaves memory but
/// stays on disk: if it comes back, only its records since are read.
final class SQLiteTableStore<Key: Hashable & Sendable, Value: Sendable>: TableStore {
    let path: String
    let topic: String
    private let keys: Deserializer<Key>
    private let values: Deserializer<Value>
    private let rows: Mutex<TableRows<Key, Value>>
    private let database = Mutex<DatabaseQueue?>(nil)
    private let thread = BlockingCallThread(name: "rkafka-table-db")

    init(path: String, topic: String, keys: Deserializer<Key>, values: Deserializer<Value>, tracksPartitions: Bool) {
        self.path = path
        self.topic = topic
        self.keys = keys
        self.values = values
        self.rows = Mutex(TableRows(tracksPartitions: tracksPartitions))
    }

    deinit { thread.stop() }

    func open() async throws(KafkaTableError) {
        let path = path
        let topic = topic
        let opened: Result<DatabaseQueue, KafkaTableError> = await thread.run {
            do {
                var configuration = Configuration()
                configuration.label = "reactive-kafka-table"
                let queue = try DatabaseQueue(path: path, configuration: configuration)
                do {
                    try queue.write { db in try SQLiteTableSchema.prepare(db, topic: topic, path: path) }
                } catch {
                    try? queue.close()
                    throw error
                }
                return .success(queue)
            } catch let error as KafkaTableError {
                return .failure(error)
            } catch {
                return .failure(Self.failure(error, path: path, doing: "opening"))
            }
        }
        database.withLock { $0 = try? opened.get() }
        _ = try opened.get()
    }

    func assign(_ partitions: Set<Int32>) async throws(KafkaTableError) -> [Int32: Int64] {
        guard !partitions.isEmpty else { return [:] }
        let list = partitions.sorted().map(String.init).joined(separator: ",")
        let stored: (rows: [Int32: [(key: Data, value: Data)]], positions: [Int32: Int64]) = try await withDatabase(
            "reading"
        ) { db in
            var rows: [Int32: [(key: Data, value: Data)]] = [:]
            let cursor = try Row.fetchCursor(
                db, sql: "SELECT partition, key, value FROM table_rows WHERE partition IN (\(list))")
            while let row = try cursor.next() {
                rows[row[0], default: []].append((row[1], row[2]))
            }
            var positions: [Int32: Int64] = [:]
            for row in try Row.fetchAll(
                db, sql: "SELECT partition, next_offset FROM table_positions WHERE partition IN (\(list))")
            {
                positions[row[0]] = row[1]
            }
            return (rows, positions)
        }
        var decoded: [Int32: [(key: Key, value: Value)]] = [:]
        for (partition, partitionRows) in stored.rows {
            decoded[partition] = try partitionRows.map { row throws(KafkaTableError) in
                try decode(row, partition: partition)
            }
        }
        rows.withLock { rows in
            for partition in partitions {
                rows.assign(partition, rows: decoded[partition] ?? [], position: stored.positions[partition])
            }
        }
        return stored.positions
    }

    func revoke(_ partitions: Set<Int32>) {
        rows.withLock { $0.revoke(partitions) }
    }

    func apply(_ batch: TableBatch<Key, Value>) async throws(KafkaTableError) -> [TableChange<Key, Value>] {
        let writable = rows.withLock { $0.writable(batch) }
        if !writable.entries.isEmpty || !writable.positions.isEmpty {
            try await withDatabase("writing") { db in try SQLiteTableSchema.write(writable, db) }
        }
        return rows.withLock { $0.apply(writable) }
    }

    func value(for key: Key) -> Value? { rows.withLock { $0.values[key] } }
    func snapshot() -> [Key: Value] { rows.withLock { $0.values } }
    var count: Int { rows.withLock { $0.values.count } }

    func close() async {
        guard
            let queue = database.withLock({ db -> DatabaseQueue? in
                defer { db = nil }
                return db
            })
        else { return }
        await thread.run { try? queue.close() }
    }

    /// Runs `body` in a transaction on the store's thread.
    private func withDatabase<T: Sendable>(_ doing: String, _ body: @escaping @Sendable (Database) throws -> T)
        async throws(KafkaTableError) -> T
    {
        guard let queue = database.withLock({ $0 }) else {
            throw KafkaTableError(.closed, "the table's SQLite store at \(path) is closed")
        }
        let path = path
        let result: Result<T, KafkaTableError> = await thread.run {
            do { return .success(try queue.write(body)) } catch {
                return .failure(Self.failure(error, path: path, doing: doing))
            }
        }
        return try result.get()
    }

    private func decode(_ row: (key: Data, value: Data), partition: Int32) throws(KafkaTableError) -> (
        key: Key, value: Value
    ) {
        do {
            return (try keys.deserialize(KafkaBytes(row.key)), try values.deserialize(KafkaBytes(row.value)))
        } catch {
            throw KafkaTableError(
                .corruptStore,
                "a row of partition \(partition) stored in \(path) cannot be deserialised (\(error)); was the file written with other deserialisers? Delete it to restore the table from the topic"
            )
        }
    }

    /// A SQLite failure as a table error: an unreadable file is ``KafkaTableError/Kind/corruptStore``.
    static func failure(_ error: any Error, path: String, doing: String) -> KafkaTableError {
        if let error = error as? KafkaTableError { return error }
        if let error = error as? DatabaseError,
            error.resultCode == .SQLITE_NOTADB || error.resultCode == .SQLITE_CORRUPT
        {
            return KafkaTableError(
                .corruptStore,
                "the table's store \(path) is not a readable SQLite database (\(error.message ?? "\(error.resultCode)")) while \(doing); delete or move it to restore the table from the topic"
            )
        }
        return KafkaTableError(.storeFailure, "\(doing) the table's SQLite store \(path) failed: \(error)")
    }
}
