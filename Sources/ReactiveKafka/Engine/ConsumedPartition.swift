/// A partition as one consumer reads it: the partition, the consumer's group, and the
/// consumer that commits its offsets.
///
/// The consumer engine makes one per partition it reads and every chunk, record offset
/// and commit batch of that partition refers to it, so a ``CommittableOffset`` holds one
/// reference where it would hold three (topic, group, committer): on the per-record path
/// every copy and release of an offset touches each reference it holds.
///
/// The engine keeps these until its thread ends; one holds the engine (as its
/// committer), so the engine drops them then, which breaks the cycle.
///
/// A committable source's reader gets a *counted* copy per chunk it takes: the engine counts
/// the copies alive (each record, offset and commit batch made from the chunk holds it), so an
/// ended stream's consumer knows whether an emitted offset may still be committed downstream
/// (``ConsumerLifecycleStateMachine``). One allocation per chunk, none per record.
@usableFromInline
final class ConsumedPartition: Sendable {
    let topicPartition: TopicPartition
    /// The consumer group, or "" when the consumer reads without one (manual assignment).
    let groupId: String
    let committer: any OffsetCommitter
    /// Tells the committer when this copy goes (see ``handedOut(takenAt:counted:subset:)``).
    private let isCounted: Bool
    /// The shared-consumer source whose reader took it (0: none), for its own count.
    private let subset: UInt64
    /// The consumer's revocation epoch when a reader took the chunk this copy came with (nil on
    /// the shared object): whether the partition was revoked since can be asked of the committer.
    let takenAt: UInt64?

    init(
        _ topicPartition: TopicPartition, groupId: String, committer: any OffsetCommitter, isCounted: Bool = false,
        subset: UInt64 = 0, takenAt: UInt64? = nil
    ) {
        self.topicPartition = topicPartition
        self.groupId = groupId
        self.committer = committer
        self.isCounted = isCounted
        self.subset = subset
        self.takenAt = takenAt
    }

    /// The copy a reader takes with a chunk, stamped with the epoch it was taken at; with
    /// `counted`, the committer hears of its end (``OffsetCommitter/emittedOffsetHolderReleased(subset:)``),
    /// and the caller counts it in (for the shared-consumer source `subset`, when not 0).
    func handedOut(takenAt epoch: UInt64, counted: Bool, subset: UInt64 = 0) -> ConsumedPartition {
        ConsumedPartition(
            topicPartition, groupId: groupId, committer: committer, isCounted: counted, subset: subset, takenAt: epoch)
    }

    deinit {
        // The committer is still alive here: this object holds it until the end of deinit.
        if isCounted { committer.emittedOffsetHolderReleased(subset: subset) }
    }
}
