import Synchronization

/// The position of a consumed record, as a transactional sink commits it:
/// Alpakka's `PartitionOffset` with its committed marker. The record's
/// partition and offset, plus the consumer group metadata that
/// `send_offsets_to_transaction` needs (KIP-447).
///
/// ``Transactional/source(_:subscription:logger:)`` attaches one to every
/// message; the sink commits `offset + 1` per partition with the transaction,
/// and tells the source what committed and when it must rewind. One built by
/// hand (``init(partitionOffset:groupMetadata:)``) commits the same way, but
/// an aborted transaction cannot be replayed from it: the stream then fails
/// with ``KafkaError/Kind/transactionAborted``.
public struct TransactionalOffset: Sendable, CustomStringConvertible {
    /// The partition, group, group metadata and source, shared by the offsets of a partition
    /// (one reference per offset instead of four: every copy of a message touches each).
    let partition: TransactionalPartition
    /// The record's offset.
    let offset: Int64

    /// The consumed record's group, partition and offset.
    public var partitionOffset: PartitionOffset {
        PartitionOffset(groupId: partition.groupId, topicPartition: partition.topicPartition, offset: offset)
    }

    /// The consumer group the offset is committed to.
    public var groupMetadata: ConsumerGroupMetadata { partition.groupMetadata }

    /// The source that emitted the record, which can rewind after an abort.
    var source: (any TransactionalSourceLink)? { partition.source }

    /// The offset of a record consumed outside ``Transactional/source(_:subscription:logger:)``.
    public init(partitionOffset: PartitionOffset, groupMetadata: ConsumerGroupMetadata) {
        self.init(
            partition: TransactionalPartition(
                partitionOffset.topicPartition, groupId: partitionOffset.groupId, groupMetadata: groupMetadata,
                source: nil),
            offset: partitionOffset.offset)
    }

    init(partition: TransactionalPartition, offset: Int64) {
        self.partition = partition
        self.offset = offset
    }

    /// A rendering for logs and error messages.
    public var description: String { "TransactionalOffset(\(partitionOffset))" }
}

/// A partition as a transactional source emits it for one period of ownership (from its
/// assignment to its revocation or loss): what every ``TransactionalOffset`` of it shares.
///
/// Its group metadata is the source's current one (a cooperative rebalance changes the
/// generation of partitions the member keeps, and their offsets stay committable). Once the
/// partition is revoked or lost the object has *ended*: records emitted before that are not
/// committed by this member any more (the partition's next owner reads them), which the
/// sink enforces by dropping them and by aborting a transaction that holds any of them.
final class TransactionalPartition: Sendable {
    let topicPartition: TopicPartition
    /// The consumer group, or "" without one.
    let groupId: String
    /// The metadata it was made with: what a hand-built offset commits with, and a source's
    /// partition once the source is gone.
    private let initialMetadata: ConsumerGroupMetadata
    /// Weak: the source keeps its partitions (a strong reference would be a cycle); a sink
    /// that commits them holds the source itself once it saw it.
    weak let source: (any TransactionalSourceLink)?
    /// Which of the source's periods of ownership of the partition this is (see
    /// ``TransactionalSourceLink/ownedPartitions``); nil for a partition no rebalance assigned
    /// (a manual assignment, or an offset built by hand).
    let ownership: UInt64?
    private let ended = Atomic<Bool>(false)

    init(
        _ topicPartition: TopicPartition, groupId: String, groupMetadata: ConsumerGroupMetadata,
        source: (any TransactionalSourceLink)?, ownership: UInt64? = nil
    ) {
        self.topicPartition = topicPartition
        self.groupId = groupId
        self.initialMetadata = groupMetadata
        self.source = source
        self.ownership = ownership
    }

    /// The metadata to send this partition's offsets with: the source's current generation.
    var groupMetadata: ConsumerGroupMetadata { source?.currentGroupMetadata ?? initialMetadata }

    /// Whether the partition was revoked from (or lost by) the member that emitted these records.
    var hasEnded: Bool { ended.load(ordering: .acquiring) }

    /// The partition was revoked or lost: its records emitted so far must not be committed.
    func end() { ended.store(true, ordering: .releasing) }
}

/// What a transactional sink needs from the source its messages came from.
protocol TransactionalSourceLink: AnyObject, Sendable {
    /// The consumer group metadata of the source's current generation (nil before it has any).
    var currentGroupMetadata: ConsumerGroupMetadata? { get }
    /// The partitions the source's member owns now, each with the number of its current period
    /// of ownership (unique per source, never reused: a partition revoked and assigned again
    /// gets a new one). Empty for a manual assignment.
    var ownedPartitions: [TopicPartition: UInt64] { get }
    /// Returns once the source's consumer is not rejoining its group (bounded): offsets sent
    /// during a rejoin carry a generation it is replacing.
    func waitWhileRejoining() async
    /// Returns once the source's group metadata is other than `refused` (a rebalance callback
    /// brought the member's new generation or member id), bounded: offsets the coordinator
    /// refused for their generation are sent again only with the next one.
    func waitForMetadata(replacing refused: ConsumerGroupMetadata) async
    /// The transaction holding these offsets (the next offsets to read) committed.
    func committed(_ offsets: [TopicPartition: Int64])
    /// A transaction was aborted: make every partition read again from `offsets`
    /// (dropping records of them not yet emitted), before the sink takes more.
    func rewind(_ offsets: [TopicPartition: Int64]) async throws(KafkaError)
    /// The sink that commits this source's offsets, so that a revoke can ask it to commit now.
    func attach(_ sink: any TransactionalSinkHandle)
    /// The sink stopped: it commits nothing more.
    func detach(_ sink: any TransactionalSinkHandle)
}

/// What a source may ask of the sink that commits its offsets.
protocol TransactionalSinkHandle: AnyObject, Sendable {
    /// Commit the open transaction now instead of at the end of the interval.
    func requestCommitNow()
    /// `partitions` changed owner (revoked or assigned): whatever the sink expected
    /// to be replayed for them after a rewind will not come.
    func partitionsReassigned(_ partitions: Set<TopicPartition>)
}
