import ReactiveKafka

/// Builds what Kafka sources emit, without a cluster, to unit-test stream logic: Alpakka's
/// `ConsumerResultFactory`. Committable offsets commit to a ``RecordingCommitter``.
///
/// Every factory checks its input like a consumer's records would satisfy it (a valid topic
/// name, a partition and offset of zero or more) and throws
/// ``KafkaError/Kind/invalidConfiguration`` saying what is wrong otherwise.
public enum ConsumerResultFactory {
    /// The consumer group that offsets made without naming one belong to.
    public static let defaultGroupId = "test-group"

    /// A record as a consumer would emit it, read at `offset` of `topic`-`partition`.
    public static func record<Key: Sendable, Value: Sendable>(
        topic: String, partition: Int32 = 0, offset: Int64, key: Key, value: Value,
        timestamp: KafkaTimestamp? = nil, headers: [KafkaHeader] = []
    ) throws(KafkaError) -> ConsumerRecord<Key, Value> {
        try checkPosition(topic: topic, partition: partition, offset: offset)
        return ConsumerRecord(
            topic: topic, partition: partition, offset: offset, timestamp: timestamp, key: key, value: value,
            headers: headers)
    }

    /// The offset of the record at `offset` of `topic`-`partition`, read by `groupId`;
    /// committing it hands `offset + 1` (and `metadata`) to `committer`.
    public static func committableOffset(
        groupId: String = defaultGroupId, topic: String, partition: Int32 = 0, offset: Int64,
        metadata: String? = nil, committer: RecordingCommitter
    ) throws(KafkaError) -> CommittableOffset {
        try committableOffset(
            PartitionOffset(groupId: groupId, topicPartition: TopicPartition(topic, partition), offset: offset),
            metadata: metadata, committer: committer)
    }

    /// The offset of the record `partitionOffset` names; committing it hands
    /// `offset + 1` (and `metadata`) to `committer`.
    public static func committableOffset(
        _ partitionOffset: PartitionOffset, metadata: String? = nil, committer: RecordingCommitter
    ) throws(KafkaError) -> CommittableOffset {
        try checkPosition(
            topic: partitionOffset.topicPartition.topic, partition: partitionOffset.topicPartition.partition,
            offset: partitionOffset.offset)
        return CommittableOffset(partitionOffset: partitionOffset, metadata: metadata, committer: committer)
    }

    /// `record` with its committable offset, as a committable source emits it: committing
    /// the offset hands `record.offset + 1` (and `metadata`) to `committer`.
    public static func committableMessage<Key: Sendable, Value: Sendable>(
        _ record: ConsumerRecord<Key, Value>, groupId: String = defaultGroupId, metadata: String? = nil,
        committer: RecordingCommitter
    ) throws(KafkaError) -> CommittableMessage<Key, Value> {
        let offset = try committableOffset(
            groupId: groupId, topic: record.topic, partition: record.partition, offset: record.offset,
            metadata: metadata, committer: committer)
        return CommittableMessage(record: record, committableOffset: offset)
    }

    /// `record` with its transactional offset, as a transactional source emits it, for
    /// consumer group `groupId`.
    ///
    /// A transactional sink fed with it commits the offset with its transaction like one
    /// built with ``TransactionalOffset/init(partitionOffset:groupMetadata:)``: there is no
    /// source to replay it from after an abort.
    /// - Throws: ``KafkaError/Kind/invalidConfiguration`` for an empty group id or a bad position.
    public static func transactionalMessage<Key: Sendable, Value: Sendable>(
        _ record: ConsumerRecord<Key, Value>, groupId: String = defaultGroupId
    ) throws(KafkaError) -> TransactionalMessage<Key, Value> {
        try checkPosition(topic: record.topic, partition: record.partition, offset: record.offset)
        let offset = TransactionalOffset(
            partitionOffset: PartitionOffset(
                groupId: groupId, topicPartition: record.topicPartition, offset: record.offset),
            groupMetadata: try ConsumerGroupMetadata(groupId: groupId))
        return TransactionalMessage(record: record, partitionOffset: offset)
    }

    static func checkPosition(topic: String, partition: Int32, offset: Int64) throws(KafkaError) {
        try TopicName.validate(topic)
        guard partition >= 0 else {
            throw KafkaError(
                .invalidConfiguration, "partition \(partition) of \(topic) is negative: partitions are numbered from 0")
        }
        guard offset >= 0 else {
            throw KafkaError(
                .invalidConfiguration, "offset \(offset) of \(topic)-\(partition) is negative: offsets start at 0")
        }
    }
}
