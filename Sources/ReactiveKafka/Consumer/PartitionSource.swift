import StreamKit

/// One assigned partition and the source of its records: the element of
/// ``Consumer/plainPartitionedSource(_:subscription:logger:)`` and the other partitioned
/// sources (Alpakka's `(TopicPartition, Source)` pair).
///
/// The source emits the partition's records in order and completes when the partition is
/// revoked or lost, or when the consumer stops. Like every Kafka source it runs once.
public struct PartitionSource<Record: Sendable>: Sendable {
    /// The partition that was assigned.
    public let partition: TopicPartition
    /// The partition's records, from where its assignment starts.
    public let source: Source<KafkaConsumerSequence<Record>, Void>
}
