/// One key's change in a table: what it held before and what it holds now.
public struct TableChange<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    /// The key that changed.
    public let key: Key
    /// Its value before the change; nil when the key was absent.
    public let oldValue: Value?
    /// Its value after the change; nil when the key was deleted (a tombstone).
    public let newValue: Value?

    /// A change of `key` from `oldValue` to `newValue`.
    public init(key: Key, oldValue: Value?, newValue: Value?) {
        self.key = key
        self.oldValue = oldValue
        self.newValue = newValue
    }
}

/// A record read for a table, deserialised, with its bytes for a persistent store.
struct TableEntry<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    let partition: Int32
    let key: Key
    /// nil: a tombstone (the key is deleted).
    let value: Value?
    let keyBytes: KafkaBytes
    let valueBytes: KafkaBytes?
}

/// What one read batch does to a table: its entries in log order, and the next offset
/// to read of each partition it covers (past skipped records too).
struct TableBatch<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    var entries: [TableEntry<Key, Value>] = []
    var positions: [Int32: Int64] = [:]
}
