/// The rows of a table and where each of its partitions is read up to: the pure state
/// both stores keep in memory (one writer at a time, under the store's lock).
///
/// Only assigned partitions take writes, so that a batch read before its partition was
/// revoked cannot bring back the rows a revoke removed.
struct TableRows<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private(set) var values: [Key: Value] = [:]
    /// The next offset to read of each assigned partition that has read anything.
    private(set) var positions: [Int32: Int64] = [:]
    private(set) var assigned: Set<Int32> = []
    /// Which partition each key came from; kept only when partitions can be revoked.
    private var partitionOfKey: [Key: Int32] = [:]
    let tracksPartitions: Bool

    init(tracksPartitions: Bool) { self.tracksPartitions = tracksPartitions }

    /// Makes `partition` writable, with the rows and position a store kept for it.
    mutating func assign(_ partition: Int32, rows: [(key: Key, value: Value)], position: Int64?) {
        assigned.insert(partition)
        if let position { positions[partition] = position }
        for row in rows {
            values[row.key] = row.value
            if tracksPartitions { partitionOfKey[row.key] = partition }
        }
    }

    /// Forgets `partitions`: their rows leave the table and later writes to them are ignored.
    mutating func revoke(_ partitions: Set<Int32>) {
        guard !partitions.isEmpty else { return }
        assigned.subtract(partitions)
        for partition in partitions { positions[partition] = nil }
        guard tracksPartitions else { return }
        for (key, partition) in partitionOfKey where partitions.contains(partition) {
            values[key] = nil
            partitionOfKey[key] = nil
        }
    }

    /// The entries of `batch` that belong to assigned partitions.
    func writable(_ batch: TableBatch<Key, Value>) -> TableBatch<Key, Value> {
        TableBatch(
            entries: batch.entries.filter { assigned.contains($0.partition) },
            positions: batch.positions.filter { assigned.contains($0.key) })
    }

    /// Applies `batch` (a tombstone deletes its key) and returns the changes it made, in order.
    mutating func apply(_ batch: TableBatch<Key, Value>) -> [TableChange<Key, Value>] {
        var changes: [TableChange<Key, Value>] = []
        changes.reserveCapacity(batch.entries.count)
        for entry in batch.entries where assigned.contains(entry.partition) {
            let old: Value?
            if let value = entry.value {
                old = values.updateValue(value, forKey: entry.key)
                if tracksPartitions { partitionOfKey[entry.key] = entry.partition }
            } else {
                old = values.removeValue(forKey: entry.key)
                if tracksPartitions { partitionOfKey[entry.key] = nil }
                // Deleting an absent key changes nothing.
                if old == nil { continue }
            }
            changes.append(TableChange(key: entry.key, oldValue: old, newValue: entry.value))
        }
        for (partition, next) in batch.positions where assigned.contains(partition) {
            positions[partition] = max(positions[partition] ?? 0, next)
        }
        return changes
    }
}
