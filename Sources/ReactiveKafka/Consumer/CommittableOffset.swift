/// The engine behind committable offsets: commits aggregated offsets asynchronously.
protocol OffsetCommitter: AnyObject, Sendable {
    /// Commits `offsets` (the next offset to read, per partition) and returns
    /// when the broker has acknowledged, or throws a typed error.
    func commit(_ offsets: [TopicPartition: CommitPosition]) async throws(KafkaError)
    /// Sends the commit without waiting for its outcome (failures are logged).
    func commitAndForget(_ offsets: [TopicPartition: CommitPosition])
    /// True while the consumer waits for commits before letting revoked
    /// partitions go (rebalance-safe commits): committers commit at once.
    var requestsImmediateCommit: Bool { get }
    /// Asks to be called (on the consumer's thread; keep it short) when a revoke starts waiting for commits.
    func addCommitRequestObserver(_ id: ObjectIdentifier, _ flush: @escaping @Sendable () -> Void)
    func removeCommitRequestObserver(_ id: ObjectIdentifier)
}

extension OffsetCommitter {
    var requestsImmediateCommit: Bool { false }
    func addCommitRequestObserver(_ id: ObjectIdentifier, _ flush: @escaping @Sendable () -> Void) {}
    func removeCommitRequestObserver(_ id: ObjectIdentifier) {}
}

/// The position to commit for a partition: the next offset to read, and optional metadata.
struct CommitPosition: Sendable, Equatable {
    var nextOffset: Int64
    var metadata: String?
}

/// The offset of a consumed record, ready to commit once the record is processed:
/// Alpakka's `CommittableOffset`.
///
/// Committing it stores `offset + 1` for its partition, so a restart resumes
/// after this record. Prefer ``Committer/sink(_:)``, which batches commits, to
/// calling ``commit()`` per record.
public struct CommittableOffset: Sendable, CustomStringConvertible {
    /// The record's group, partition and offset.
    public let partitionOffset: PartitionOffset
    /// Metadata stored with the commit (`commitWithMetadataSource`), if any.
    public let metadata: String?
    let committer: any OffsetCommitter

    init(partitionOffset: PartitionOffset, metadata: String? = nil, committer: any OffsetCommitter) {
        self.partitionOffset = partitionOffset
        self.metadata = metadata
        self.committer = committer
    }

    /// Commits this offset alone and waits for the broker's acknowledgement.
    public func commit() async throws(KafkaError) {
        try await committer.commit([partitionOffset.topicPartition: position])
    }

    var position: CommitPosition { CommitPosition(nextOffset: partitionOffset.offset + 1, metadata: metadata) }

    public var description: String { "CommittableOffset(\(partitionOffset))" }
}

/// Offsets gathered for one commit: the highest offset per partition wins.
/// Alpakka's `CommittableOffsetBatch`.
public struct CommittableOffsetBatch: Sendable, CustomStringConvertible {
    private struct Entry: Sendable {
        var position: CommitPosition
        var committer: any OffsetCommitter
    }

    private var entries: [TopicPartition: Entry] = [:]
    /// The entry `add` touched last. Consecutive offsets mostly share a partition (records
    /// arrive in per-partition runs); finding its entry again by index instead of by key
    /// saves hashing the topic name per offset. Reset whenever a key is inserted.
    private var lastAdded: (key: TopicPartition, index: Dictionary<TopicPartition, Entry>.Index)?
    /// How many offsets were added (not how many partitions).
    public private(set) var batchSize: Int = 0

    /// An empty batch.
    public init() {}

    /// A batch holding `offsets`.
    public init<S: Sequence>(_ offsets: S) where S.Element == CommittableOffset {
        for offset in offsets { add(offset) }
    }

    /// True when no offset was added.
    public var isEmpty: Bool { entries.isEmpty }

    /// The next offset to read that the batch would commit, per partition.
    public var offsets: [TopicPartition: Int64] { entries.mapValues(\.position.nextOffset) }

    /// Adds `offset`; an offset lower than one already held for its partition is ignored.
    public mutating func add(_ offset: CommittableOffset) {
        batchSize += 1
        let position = offset.position
        let key = offset.partitionOffset.topicPartition
        let index: Dictionary<TopicPartition, Entry>.Index
        if let last = lastAdded, last.key == key {
            index = last.index
        } else if let found = entries.index(forKey: key) {
            index = found
            lastAdded = (key, found)
        } else {
            entries[key] = Entry(position: position, committer: offset.committer)
            lastAdded = entries.index(forKey: key).map { (key, $0) }
            return
        }
        if entries.values[index].position.nextOffset >= position.nextOffset { return }
        entries.values[index] = Entry(position: position, committer: offset.committer)
    }

    /// Adds every offset of `other`.
    public mutating func add(_ other: CommittableOffsetBatch) {
        batchSize += other.batchSize
        lastAdded = nil
        for (key, entry) in other.entries {
            if let existing = entries[key], existing.position.nextOffset >= entry.position.nextOffset { continue }
            entries[key] = entry
        }
    }

    /// Commits the batch and waits for every consumer involved to acknowledge.
    public func commit() async throws(KafkaError) {
        let groups = byCommitter()
        if groups.count == 1 {
            try await groups[0].0.commit(groups[0].1)
            return
        }
        // Every consumer is handed its offsets before any acknowledgement is awaited, so
        // commits reach each consumer in the order they were made (see `CommitterRun`).
        let commits = groups.map { committer, offsets in
            Task.immediate { () async throws -> Void in try await committer.commit(offsets) }
        }
        var firstError: KafkaError?
        for commit in commits {
            do {
                try await commit.value
            } catch {
                firstError = firstError ?? (error as? KafkaError) ?? KafkaError(.commitFailed, "commit failed: \(error)")
            }
        }
        if let firstError { throw firstError }
    }

    /// Sends the batch without waiting; failures are logged.
    public func commitAndForget() {
        for (committer, offsets) in byCommitter() { committer.commitAndForget(offsets) }
    }

    private func byCommitter() -> [(any OffsetCommitter, [TopicPartition: CommitPosition])] {
        var groups: [ObjectIdentifier: (any OffsetCommitter, [TopicPartition: CommitPosition])] = [:]
        for (key, entry) in entries {
            groups[ObjectIdentifier(entry.committer), default: (entry.committer, [:])].1[key] = entry.position
        }
        return Array(groups.values)
    }

    public var description: String {
        "CommittableOffsetBatch(" + entries.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value.position.nextOffset)" }.joined(separator: ", ") + ")"
    }
}

/// A consumed record together with its committable offset: Alpakka's `CommittableMessage`.
public struct CommittableMessage<Key: Sendable, Value: Sendable>: Sendable {
    /// The record.
    public let record: ConsumerRecord<Key, Value>
    /// Its offset, to commit once the record is processed.
    public let committableOffset: CommittableOffset

    /// Pairs `record` with its offset.
    init(record: ConsumerRecord<Key, Value>, committableOffset: CommittableOffset) {
        self.record = record
        self.committableOffset = committableOffset
    }
}
