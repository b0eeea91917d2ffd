/// The engine behind committable offsets: commits aggregated offsets asynchronously.
///
/// Package access: the testkit's `RecordingCommitter` stands in for a consumer with it.
package protocol OffsetCommitter: AnyObject, Sendable {
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
    /// A counted ``ConsumedPartition`` (emitted records' offsets) is gone; called from its deinit,
    /// any thread. `subset`: the shared-consumer source that took it, or 0.
    func emittedOffsetHolderReleased(subset: UInt64)
    /// Whether `partition` stayed assigned to this consumer since a reader took a record of it at `epoch`.
    func stillOwns(_ partition: TopicPartition, takenAt epoch: UInt64) -> Bool
}

extension OffsetCommitter {
    package func stillOwns(_ partition: TopicPartition, takenAt epoch: UInt64) -> Bool { true }
    package func emittedOffsetHolderReleased(subset: UInt64) {}
    package var requestsImmediateCommit: Bool { false }
    package func addCommitRequestObserver(_ id: ObjectIdentifier, _ flush: @escaping @Sendable () -> Void) {}
    package func removeCommitRequestObserver(_ id: ObjectIdentifier) {}
}

/// The position to commit for a partition: the next offset to read, and optional metadata.
package struct CommitPosition: Sendable, Equatable {
    package var nextOffset: Int64
    package var metadata: String?

    package init(nextOffset: Int64, metadata: String? = nil) {
        self.nextOffset = nextOffset
        self.metadata = metadata
    }
}

/// The offset of a consumed record, ready to commit once the record is processed:
/// Alpakka's `CommittableOffset`.
///
/// Committing it stores `offset + 1` for its partition, so a restart resumes
/// after this record. Prefer ``Committer/sink(_:)``, which batches commits, to
/// calling ``commit()`` per record.
public struct CommittableOffset: Sendable, CustomStringConvertible {
    /// The partition, its group and its committer, shared by every offset of the partition.
    let partition: ConsumedPartition
    /// The record's offset.
    let offset: Int64
    /// Metadata stored with the commit (`commitWithMetadataSource`), if any.
    public let metadata: String?

    init(partition: ConsumedPartition, offset: Int64, metadata: String? = nil) {
        self.partition = partition
        self.offset = offset
        self.metadata = metadata
    }

    /// An offset committed through `committer` (package access: the testkit's factories).
    package init(partitionOffset: PartitionOffset, metadata: String? = nil, committer: any OffsetCommitter) {
        self.init(
            partition: ConsumedPartition(
                partitionOffset.topicPartition, groupId: partitionOffset.groupId, committer: committer),
            offset: partitionOffset.offset, metadata: metadata)
    }

    /// The record's group, partition and offset.
    public var partitionOffset: PartitionOffset {
        PartitionOffset(groupId: partition.groupId, topicPartition: partition.topicPartition, offset: offset)
    }

    var committer: any OffsetCommitter { partition.committer }

    /// True when the record's partition was revoked (or rewound) after the record was read,
    /// even if it was assigned to this consumer again since.
    var partitionMovedSinceRead: Bool {
        guard let takenAt = partition.takenAt else { return false }
        return !partition.committer.stillOwns(partition.topicPartition, takenAt: takenAt)
    }

    /// Commits this offset alone and waits for the broker's acknowledgement.
    ///
    /// Returns only once the broker acknowledged it. Throws
    /// ``KafkaError/Kind/notAssigned`` when the partition is no longer this
    /// consumer's (nothing was committed; its next owner reads the record
    /// again), and another ``KafkaError`` when the commit failed. If its task is
    /// cancelled while it waits, it throws ``KafkaError/Kind/cancelled`` at once (the
    /// commit may still land, as a commit already sent may).
    public func commit() async throws(KafkaError) {
        try await committer.commit([partition.topicPartition: position])
    }

    var position: CommitPosition { CommitPosition(nextOffset: offset + 1, metadata: metadata) }

    public var description: String { "CommittableOffset(\(partitionOffset))" }
}

/// Offsets gathered for one commit: the highest offset per partition wins.
/// Alpakka's `CommittableOffsetBatch`.
public struct CommittableOffsetBatch: Sendable, CustomStringConvertible {
    private struct Entry: Sendable {
        var position: CommitPosition
        /// Who commits it: the partition's consumer.
        var partition: ConsumedPartition
        var committer: any OffsetCommitter { partition.committer }
    }

    /// Every partition's entry except the current run's.
    private var entries: [TopicPartition: Entry] = [:]
    /// The entry of the partition `add` touched last, kept out of `entries`. Consecutive
    /// offsets mostly share a partition (records arrive in per-partition runs) and then share
    /// its object too: adding one is an identity check and an integer store, where a
    /// dictionary update would hash the topic name and trade references per offset.
    private var run: Entry?
    /// How many offsets were added (not how many partitions).
    public private(set) var batchSize: Int = 0

    /// An empty batch.
    public init() {}

    /// A batch holding `offsets`.
    public init<S: Sequence>(_ offsets: S) where S.Element == CommittableOffset {
        for offset in offsets { add(offset) }
    }

    /// True when no offset was added.
    public var isEmpty: Bool { entries.isEmpty && run == nil }

    /// How many partitions the batch commits an offset for.
    var partitionCount: Int {
        guard let run else { return entries.count }
        return entries[run.partition.topicPartition] == nil ? entries.count + 1 : entries.count
    }

    /// The next offset to read that the batch would commit, per partition.
    public var offsets: [TopicPartition: Int64] { allEntries.mapValues(\.position.nextOffset) }

    /// Adds `offset`; an offset lower than one already held for its partition is ignored.
    public mutating func add(_ offset: CommittableOffset) {
        batchSize += 1
        if run?.partition === offset.partition {
            // unsafelyUnwrapped: the identity check above only passes when `run` is set.
            if offset.offset >= run.unsafelyUnwrapped.position.nextOffset {
                run!.position.nextOffset = offset.offset + 1
                if offset.metadata != nil || run.unsafelyUnwrapped.position.metadata != nil {
                    run!.position.metadata = offset.metadata
                }
            }
            return
        }
        settleRun()
        if let existing = entries.removeValue(forKey: offset.partition.topicPartition),
            existing.position.nextOffset > offset.offset
        {
            run = existing
        } else {
            run = Entry(position: offset.position, partition: offset.partition)
        }
    }

    /// Adds every offset of `other`.
    public mutating func add(_ other: CommittableOffsetBatch) {
        batchSize += other.batchSize
        settleRun()
        for (key, entry) in other.allEntries {
            if let existing = entries[key], existing.position.nextOffset >= entry.position.nextOffset { continue }
            entries[key] = entry
        }
    }

    private mutating func settleRun() {
        guard let settled = run else { return }
        run = nil
        entries[settled.partition.topicPartition] = settled
    }

    /// Every partition's entry, the current run's included.
    private var allEntries: [TopicPartition: Entry] {
        guard let run else { return entries }
        var all = entries
        all[run.partition.topicPartition] = run
        return all
    }

    /// Commits the batch and waits for every consumer involved to acknowledge.
    ///
    /// Throws ``KafkaError/Kind/notAssigned`` (naming the partitions in
    /// ``KafkaError/partitions``) when offsets of partitions their consumer no
    /// longer owns were left out; the batch's other offsets were committed.
    /// Any other error means the commit failed.
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
        var notAssigned = Set<TopicPartition>()
        for commit in commits {
            do {
                try await commit.value
            } catch let error as KafkaError where error.kind == .notAssigned {
                notAssigned.formUnion(error.partitions)
            } catch {
                firstError =
                    firstError ?? (error as? KafkaError) ?? KafkaError(.commitFailed, "commit failed: \(error)")
            }
        }
        // A failed commit outweighs partitions that were only left out.
        if let firstError { throw firstError }
        if !notAssigned.isEmpty { throw KafkaError.notAssigned(notAssigned) }
    }

    /// This batch without the offsets of `partitions`.
    func removing(_ partitions: Set<TopicPartition>) -> CommittableOffsetBatch {
        var kept = CommittableOffsetBatch()
        kept.entries = allEntries.filter { !partitions.contains($0.key) }
        kept.batchSize = batchSize
        return kept
    }

    /// Sends the batch without waiting; failures are logged.
    public func commitAndForget() {
        for (committer, offsets) in byCommitter() { committer.commitAndForget(offsets) }
    }

    private func byCommitter() -> [(any OffsetCommitter, [TopicPartition: CommitPosition])] {
        var groups: [ObjectIdentifier: (any OffsetCommitter, [TopicPartition: CommitPosition])] = [:]
        for (key, entry) in allEntries {
            groups[ObjectIdentifier(entry.committer), default: (entry.committer, [:])].1[key] = entry.position
        }
        return Array(groups.values)
    }

    public var description: String {
        "CommittableOffsetBatch("
            + allEntries.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value.position.nextOffset)" }.joined(
                separator: ", ") + ")"
    }
}

/// A consumed record together with its committable offset: Alpakka's `CommittableMessage`.
public struct CommittableMessage<Key: Sendable, Value: Sendable>: Sendable {
    /// The record.
    public let record: ConsumerRecord<Key, Value>
    /// Its offset, to commit once the record is processed.
    public let committableOffset: CommittableOffset

    /// Pairs `record` with its offset (package access: the testkit's factories).
    package init(record: ConsumerRecord<Key, Value>, committableOffset: CommittableOffset) {
        self.record = record
        self.committableOffset = committableOffset
    }
}
