import Foundation
import GRDB
import Synchronization

/// The SQLite file of an event-sourced stage's snapshots: per changelog partition, each key's
/// encoded state with the changelog offset it holds, and where a replay of the partition starts.
///
/// A partition's snapshots and its replay start are written in one SQLite transaction, and only
/// for events already committed in Kafka, so the file never holds what an aborted transaction did.
/// SQLite's calls block: they run on the store's own thread, never on Swift's cooperative pool.
final class SnapshotStore: Sendable {
    /// A key's snapshot as stored.
    struct Row: Sendable {
        var key: Data
        var state: Data
        var offset: Int64
    }

    let path: String
    let topic: String
    private let database = Mutex<DatabaseQueue?>(nil)
    private let thread = BlockingCallThread(name: "rkafka-snapshots")

    init(path: String, topic: String) {
        self.path = path
        self.topic = topic
    }

    deinit { thread.stop() }

    /// Opens (or creates) the file; a file of another format or changelog topic is refused.
    func open() async throws(EventSourcedError) {
        let (path, topic) = (path, topic)
        let opened: Result<DatabaseQueue, EventSourcedError> = await thread.run {
            do {
                let queue = try DatabaseQueue(path: path)
                do {
                    try queue.write { db in try SnapshotSchema.prepare(db, topic: topic, path: path) }
                } catch {
                    try? queue.close()
                    throw error
                }
                return .success(queue)
            } catch {
                return .failure(Self.failure(error, path: path, doing: "opening"))
            }
        }
        database.withLock { $0 = try? opened.get() }
        _ = try opened.get()
    }

    /// The snapshots of `partition` and where its replay starts (nil: nothing stored).
    func load(_ partition: Int32) async throws(EventSourcedError) -> (rows: [Row], replayFrom: Int64?) {
        try await withDatabase("reading") { db in
            let rows = try GRDB.Row.fetchAll(
                db, sql: "SELECT key, state, offset FROM snapshots WHERE partition = ?", arguments: [partition]
            ).map { Row(key: $0[0], state: $0[1], offset: $0[2]) }
            let start = try Int64.fetchOne(
                db, sql: "SELECT replay_from FROM replay_starts WHERE partition = ?", arguments: [partition])
            return (rows, start)
        }
    }

    /// Stores `rows` of `partition` and its new replay start, in one transaction.
    func save(_ rows: [Row], partition: Int32, replayFrom: Int64) async throws(EventSourcedError) {
        try await withDatabase("writing") { db in
            let upsert = try db.cachedStatement(
                sql: """
                    INSERT INTO snapshots (partition, key, state, offset) VALUES (?, ?, ?, ?)
                    ON CONFLICT (partition, key) DO UPDATE SET state = excluded.state, offset = excluded.offset
                    WHERE excluded.offset >= snapshots.offset
                    """)
            for row in rows { try upsert.execute(arguments: [partition, row.key, row.state, row.offset]) }
            try db.execute(
                sql: """
                    INSERT INTO replay_starts (partition, replay_from) VALUES (?, ?)
                    ON CONFLICT (partition) DO UPDATE SET replay_from = excluded.replay_from
                    """, arguments: [partition, replayFrom])
        }
    }

    /// Closes the file (idempotent).
    func close() async {
        guard
            let queue = database.withLock({ db -> DatabaseQueue? in
                defer { db = nil }
                return db
            })
        else { return }
        await thread.run { try? queue.close() }
    }

    private func withDatabase<T: Sendable>(_ doing: String, _ body: @escaping @Sendable (Database) throws -> T)
        async throws(EventSourcedError) -> T
    {
        guard let queue = database.withLock({ $0 }) else {
            throw EventSourcedError(.storeFailure, "the snapshot store \(path) is closed")
        }
        let path = path
        let result: Result<T, EventSourcedError> = await thread.run {
            do { return .success(try queue.write(body)) } catch {
                return .failure(Self.failure(error, path: path, doing: doing))
            }
        }
        return try result.get()
    }

    private static func failure(_ error: any Error, path: String, doing: String) -> EventSourcedError {
        if let error = error as? EventSourcedError { return error }
        if let error = error as? DatabaseError,
            error.resultCode == .SQLITE_NOTADB || error.resultCode == .SQLITE_CORRUPT
        {
            return EventSourcedError(
                .corruptStore,
                "the snapshot store \(path) is not a readable SQLite database while \(doing); delete or move it to recover from the changelog"
            )
        }
        return EventSourcedError(.storeFailure, "\(doing) the snapshot store \(path) failed: \(error)")
    }
}

/// The layout of a snapshot file and the marker that tells it apart from any other.
enum SnapshotSchema {
    static let format = "reactive-kafka-snapshots"
    static let version = "1"

    static func prepare(_ db: Database, topic: String, path: String) throws {
        let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        if tables.isEmpty {
            try db.execute(
                sql: """
                    CREATE TABLE snapshot_marker (name TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
                    CREATE TABLE snapshots (partition INTEGER NOT NULL, key BLOB NOT NULL, state BLOB NOT NULL, offset INTEGER NOT NULL, PRIMARY KEY (partition, key)) WITHOUT ROWID;
                    CREATE TABLE replay_starts (partition INTEGER PRIMARY KEY NOT NULL, replay_from INTEGER NOT NULL);
                    """)
            for (name, value) in [("format", format), ("version", version), ("topic", topic)] {
                try db.execute(
                    sql: "INSERT INTO snapshot_marker (name, value) VALUES (?, ?)", arguments: [name, value])
            }
            return
        }
        guard tables.contains("snapshot_marker") else {
            throw EventSourcedError(
                .foreignStore,
                "\(path) is a SQLite database that EventSourced did not write; give the stage a snapshot file of its own"
            )
        }
        var marker: [String: String] = [:]
        for row in try GRDB.Row.fetchAll(db, sql: "SELECT name, value FROM snapshot_marker") { marker[row[0]] = row[1] }
        guard marker["format"] == format, marker["version"] == version else {
            throw EventSourcedError(
                .foreignStore,
                "\(path) holds format \(marker["format"] ?? "?") version \(marker["version"] ?? "?"), not \(format) version \(version); delete it to recover from the changelog"
            )
        }
        guard marker["topic"] == topic else {
            throw EventSourcedError(
                .foreignStore,
                "\(path) holds the snapshots of changelog \(marker["topic"] ?? "?"), not of \(topic); give each stage a file of its own"
            )
        }
    }
}
