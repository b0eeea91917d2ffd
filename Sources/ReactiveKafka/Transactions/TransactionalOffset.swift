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
    /// The consumed record's group, partition and offset.
    public let partitionOffset: PartitionOffset
    /// The consumer group the offset is committed to.
    public let groupMetadata: ConsumerGroupMetadata
    /// The source that emitted the record, which can rewind after an abort.
    let source: (any TransactionalSourceLink)?

    /// The offset of a record consumed outside ``Transactional/source(_:subscription:logger:)``.
    public init(partitionOffset: PartitionOffset, groupMetadata: ConsumerGroupMetadata) {
        self.init(partitionOffset: partitionOffset, groupMetadata: groupMetadata, source: nil)
    }

    init(partitionOffset: PartitionOffset, groupMetadata: ConsumerGroupMetadata, source: (any TransactionalSourceLink)?) {
        self.partitionOffset = partitionOffset
        self.groupMetadata = groupMetadata
        self.source = source
    }

    public var description: String { "TransactionalOffset(\(partitionOffset))" }
}

/// What a transactional sink needs from the source its messages came from.
protocol TransactionalSourceLink: AnyObject, Sendable {
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
