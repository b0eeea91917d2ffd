/// What the sources emitted and what of it this consumer committed, per partition: the
/// bookkeeping behind two guarantees, as a pure state machine (no I/O; the engine calls it
/// with its state lock held).
///
/// - **Rebalance-safe commits** (``tracksHandedOut``): a graceful revoke waits until every
///   record emitted for the revoked partitions is committed. A reader holds the batch it was
///   handed until it comes back for more (then it emitted all of it) or says where it stopped
///   (``readerDropped(_:firstUnemitted:stillHolding:)``, after a revoke or rewind), so what
///   must be committed is the end of what was handed out, or the first record dropped.
/// - **Emitted-offset storing** (``storesEmitted``): a plain source with librdkafka's
///   auto-commit stores offsets of records it emitted, never of records merely fetched.
struct EmittedOffsetTracker {
    typealias Reader = ConsumerEngine.Reader

    /// Track what was handed out and committed (rebalance-safe commits are on).
    let tracksHandedOut: Bool
    /// Track what was emitted for librdkafka's offset store (a plain source with auto-commit).
    let storesEmitted: Bool

    /// The offset after the last record handed to a reader, per partition.
    private(set) var handedOut: [TopicPartition: Int64] = [:]
    /// The partitions of the batch each reader is still emitting.
    private(set) var holding: [Reader: Set<TopicPartition>] = [:]
    /// The first record a reader dropped, unemitted, after a revoke.
    private(set) var firstUnemitted: [TopicPartition: Int64] = [:]
    /// The next offset to read, as last committed by this consumer.
    private(set) var committedNext: [TopicPartition: Int64] = [:]
    /// Partitions being revoked while their commits are awaited: still committable.
    private(set) var revoking: Set<TopicPartition> = []
    /// Per reader, the offset after each partition's last record in the batch it holds.
    private var lastTaken: [Reader: [TopicPartition: Int64]] = [:]
    /// Emitted and not yet handed to librdkafka's offset store.
    private var emittedToStore: [TopicPartition: Int64] = [:]

    init(tracksHandedOut: Bool, storesEmitted: Bool) {
        self.tracksHandedOut = tracksHandedOut
        self.storesEmitted = storesEmitted
    }

    var isRevoking: Bool { !revoking.isEmpty }

    /// `reader` took a batch; `nextOffsets` is, per partition, the offset after its last record.
    mutating func handedOut(_ nextOffsets: [TopicPartition: Int64], to reader: Reader) {
        if storesEmitted { lastTaken[reader] = nextOffsets }
        if tracksHandedOut {
            for (p, next) in nextOffsets { handedOut[p] = next }
            holding[reader] = Set(nextOffsets.keys)
        }
    }

    /// `reader` came back for more: the batch it held was emitted in full. True when a revoke
    /// waits for it (the engine should look again).
    mutating func readerReturned(_ reader: Reader) -> Bool {
        if storesEmitted, let emitted = lastTaken.removeValue(forKey: reader) {
            emittedToStore.merge(emitted, uniquingKeysWith: max)
        }
        return holding.removeValue(forKey: reader) != nil && isRevoking
    }

    /// `reader` dropped records after a revoke or rewind: `firstUnemitted` per partition, and the
    /// partitions whose records it still holds to emit. True when a revoke waits for it.
    mutating func readerDropped(
        _ reader: Reader, firstUnemitted dropped: [TopicPartition: Int64], stillHolding: Set<TopicPartition>
    ) -> Bool {
        guard tracksHandedOut else { return false }
        if holding[reader] != nil { holding[reader] = stillHolding }
        for (p, offset) in dropped where revoking.contains(p) {
            firstUnemitted[p] = min(firstUnemitted[p] ?? .max, offset)
        }
        return isRevoking
    }

    /// The broker acknowledged a commit of `offsets` (the next offsets to read).
    mutating func committed(_ offsets: [TopicPartition: Int64]) {
        for (p, next) in offsets { committedNext[p] = max(committedNext[p] ?? -1, next) }
    }

    /// A graceful revoke of `partitions` starts waiting for their commits.
    mutating func beginRevoke(_ partitions: Set<TopicPartition>) {
        revoking = partitions
    }

    /// The revoke is over: `partitions` are forgotten (a later assignment starts afresh). Records
    /// of them that readers still hold were invalidated with the revoke: never emitted.
    mutating func endRevoke(_ partitions: Set<TopicPartition>) {
        revoking.removeAll()
        for reader in Array(holding.keys) { holding[reader]?.subtract(partitions) }
        for p in partitions {
            handedOut[p] = nil
            firstUnemitted[p] = nil
            committedNext[p] = nil
        }
    }

    /// Those of `partitions` whose emitted records are not all committed yet, or whose reader
    /// has not yet said how far it emitted.
    func uncommitted(among partitions: Set<TopicPartition>) -> Set<TopicPartition> {
        var outstanding = Set<TopicPartition>()
        for held in holding.values { outstanding.formUnion(held.intersection(partitions)) }
        for p in partitions {
            guard let handed = handedOut[p] else { continue }
            let needed = min(handed, firstUnemitted[p] ?? .max)
            if (committedNext[p] ?? -1) < needed { outstanding.insert(p) }
        }
        return outstanding
    }

    /// The partitions whose offsets may be committed: the assigned ones, and those being revoked.
    func committable(assigned: Set<TopicPartition>) -> Set<TopicPartition> {
        revoking.isEmpty ? assigned : assigned.union(revoking)
    }

    /// What to hand librdkafka's offset store now: the emitted offsets of partitions still
    /// `assigned` (a partition that moved is its next owner's, from the last commit).
    mutating func takeOffsetsToStore(assigned: Set<TopicPartition>) -> [TopicPartition: Int64] {
        defer { emittedToStore.removeAll() }
        return emittedToStore.filter { assigned.contains($0.key) }
    }
}
