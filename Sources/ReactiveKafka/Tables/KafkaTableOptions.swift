/// How a ``KafkaTable`` reads its topic and where it keeps its rows.
public struct KafkaTableOptions: Sendable {
    /// Which partitions the table holds.
    public enum Scope: Sendable, Equatable {
        /// Every partition of the topic, with no consumer group (Kafka Streams' `GlobalKTable`):
        /// each instance holds the whole table.
        case global
        /// The partitions this member of the settings' consumer group owns (a `KTable`),
        /// following rebalances. Records of one key must be in one partition (the default partitioner does this).
        case partitionAligned
    }

    /// Where the rows live.
    public enum Storage: Sendable, Equatable {
        /// In memory only: a restart reads the topic again from its beginning.
        case memory
        /// In memory for look-ups and in the SQLite database at `path`, where each batch of
        /// rows is written with the offsets it reached in one transaction: a restart loads the
        /// rows and reads only the records written since. One file per table (its topic is
        /// recorded in it and checked on open).
        case sqlite(path: String)
    }

    /// What to do with a record whose key or value cannot be deserialised.
    public enum UndeserializablePolicy: Sendable, Equatable {
        /// Fail the table with a ``KafkaTableError/Kind/deserialization`` error naming the record.
        case fail
        /// Skip the record and count it in ``KafkaTable/skippedRecords``.
        case skip
    }

    /// Which partitions the table holds; `.global` unless set.
    public var scope: Scope
    /// Where the rows live; `.memory` unless set.
    public var storage: Storage
    /// What to do with undeserialisable records; `.fail` unless set.
    public var onUndeserializable: UndeserializablePolicy
    /// The most records applied to the store in one batch (one SQLite transaction).
    public var maxBatchRecords: Int

    /// Options; the defaults hold the whole topic in memory and fail on bad records.
    public init(
        scope: Scope = .global, storage: Storage = .memory, onUndeserializable: UndeserializablePolicy = .fail,
        maxBatchRecords: Int = 2_000
    ) {
        self.scope = scope
        self.storage = storage
        self.onUndeserializable = onUndeserializable
        self.maxBatchRecords = maxBatchRecords
    }
}
