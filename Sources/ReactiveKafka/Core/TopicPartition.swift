/// A partition of a topic.
public struct TopicPartition: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The topic's name.
    public var topic: String
    /// The partition number within the topic.
    public var partition: Int32

    /// The partition `partition` of `topic`.
    public init(_ topic: String, _ partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    /// A rendering for logs and error messages.
    public var description: String { "\(topic)-\(partition)" }

    /// Whether the left value orders before the right one.
    public static func < (lhs: TopicPartition, rhs: TopicPartition) -> Bool {
        (lhs.topic, lhs.partition) < (rhs.topic, rhs.partition)
    }
}

/// A position in a partition: the offset of a record, as Alpakka's `PartitionOffset`.
public struct PartitionOffset: Hashable, Sendable, CustomStringConvertible {
    /// The consumer group that read the record.
    public var groupId: String
    /// Where the record was read.
    public var topicPartition: TopicPartition
    /// The record's offset. Committing it stores `offset + 1`, the next record to read.
    public var offset: Int64

    /// The record at `offset` of `topicPartition`, read by `groupId`.
    public init(groupId: String, topicPartition: TopicPartition, offset: Int64) {
        self.groupId = groupId
        self.topicPartition = topicPartition
        self.offset = offset
    }

    /// A rendering for logs and error messages.
    public var description: String { "\(groupId)@\(topicPartition):\(offset)" }
}
