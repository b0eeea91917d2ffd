import GRDB

/// The layout of a table's SQLite file, and the marker that tells it apart from any other.
///
/// A file is reused only when its marker names this format, this version and the same
/// topic; an empty file gets the layout. Anything else is a ``KafkaTableError/Kind/foreignStore``.
enum SQLiteTableSchema {
    static let format = "reactive-kafka-table"
    static let version = "1"
    static let markerTable = "reactive_kafka_table"

    /// Creates the layout in an empty database, or checks the marker of an existing one.
    static func prepare(_ db: Database, topic: String, path: String) throws {
        let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        if tables.isEmpty {
            try db.execute(
                sql: """
                    CREATE TABLE \(markerTable) (name TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
                    CREATE TABLE table_rows (key BLOB PRIMARY KEY NOT NULL, partition INTEGER NOT NULL, value BLOB NOT NULL) WITHOUT ROWID;
                    CREATE INDEX table_rows_partition ON table_rows (partition);
                    CREATE TABLE table_positions (partition INTEGER PRIMARY KEY NOT NULL, next_offset INTEGER NOT NULL);
                    """)
            for (name, value) in [("format", format), ("version", version), ("topic", topic)] {
                try db.execute(sql: "INSERT INTO \(markerTable) (name, value) VALUES (?, ?)", arguments: [name, value])
            }
            return
        }
        guard tables.contains(markerTable) else {
            throw KafkaTableError(
                .foreignStore,
                "\(path) is a SQLite database that KafkaTable did not write (its tables: \(tables.joined(separator: ", "))); give the table a file of its own"
            )
        }
        var marker: [String: String] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT name, value FROM \(markerTable)") { marker[row[0]] = row[1] }
        guard marker["format"] == format, marker["version"] == version else {
            throw KafkaTableError(
                .foreignStore,
                "\(path) holds format \(marker["format"] ?? "?") version \(marker["version"] ?? "?"), not \(format) version \(version); delete it to restore the table from the topic"
            )
        }
        guard marker["topic"] == topic else {
            throw KafkaTableError(
                .foreignStore,
                "\(path) holds the table of topic \(marker["topic"] ?? "?"), not of \(topic); give each table a file of its own"
            )
        }
    }

    /// Writes a batch's rows and positions (the caller's transaction makes them one).
    static func write<Key, Value>(_ batch: TableBatch<Key, Value>, _ db: Database) throws {
        let upsert = try db.cachedStatement(
            sql: """
                INSERT INTO table_rows (key, partition, value) VALUES (?, ?, ?)
                ON CONFLICT (key) DO UPDATE SET partition = excluded.partition, value = excluded.value
                """)
        let delete = try db.cachedStatement(sql: "DELETE FROM table_rows WHERE key = ?")
        for entry in batch.entries {
            if let value = entry.valueBytes {
                try upsert.execute(arguments: [entry.keyBytes.data, entry.partition, value.data])
            } else {
                try delete.execute(arguments: [entry.keyBytes.data])
            }
        }
        let position = try db.cachedStatement(
            sql: """
                INSERT INTO table_positions (partition, next_offset) VALUES (?, ?)
                ON CONFLICT (partition) DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)
                """)
        for (partition, next) in batch.positions {
            try position.execute(arguments: [partition, next])
        }
    }
}
