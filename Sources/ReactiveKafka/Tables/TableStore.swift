import Synchronization

/// Where a table keeps its rows: in memory (``InMemoryTableStore``) or also on disk
/// (``SQLiteTableStore``). Look-ups read memory under a lock; writes come from the
/// table's reading tasks, one batch at a time per partition.
protocol TableStore<Key, Value>: Sendable {
    associatedtype Key: Hashable & Sendable
    associatedtype Value: Sendable

    /// Prepares the store (opens and checks a file). Called once, before anything else.
    func open() async throws(KafkaTableError)
    /// Makes `partitions` writable and loads what the store kept for them; returns the
    /// next offset to read of those it has read before (absent: read from the beginning).
    func assign(_ partitions: Set<Int32>) async throws(KafkaTableError) -> [Int32: Int64]
    /// Drops `partitions` from memory (a persistent store keeps them on disk). Cheap: it runs
    /// on the consumer's thread during a rebalance.
    func revoke(_ partitions: Set<Int32>)
    /// Applies `batch` (rows and positions together) and returns the changes it made.
    func apply(_ batch: TableBatch<Key, Value>) async throws(KafkaTableError) -> [TableChange<Key, Value>]
    /// The current value of `key`.
    func value(for key: Key) -> Value?
    /// All rows at one moment (between two batches).
    func snapshot() -> [Key: Value]
    /// The number of rows.
    var count: Int { get }
    /// Releases what the store holds open. Idempotent.
    func close() async
}

/// A store that keeps rows in memory only: a restart reads the topic again.
final class InMemoryTableStore<Key: Hashable & Sendable, Value: Sendable>: TableStore {
    private let rows: Mutex<TableRows<Key, Value>>

    init(tracksPartitions: Bool) {
        rows = Mutex(TableRows(tracksPartitions: tracksPartitions))
    }

    func open() async throws(KafkaTableError) {}

    func assign(_ partitions: Set<Int32>) async throws(KafkaTableError) -> [Int32: Int64] {
        rows.withLock { rows in
            for partition in partitions { rows.assign(partition, rows: [], position: nil) }
        }
        return [:]
    }

    func revoke(_ partitions: Set<Int32>) {
        rows.withLock { $0.revoke(partitions) }
    }

    func apply(_ batch: TableBatch<Key, Value>) async throws(KafkaTableError) -> [TableChange<Key, Value>] {
        rows.withLock { $0.apply(batch) }
    }

    func value(for key: Key) -> Value? { rows.withLock { $0.values[key] } }
    func snapshot() -> [Key: Value] { rows.withLock { $0.values } }
    var count: Int { rows.withLock { $0.values.count } }
    func close() async {}
}
