/// A record to write to Kafka.
public struct ProducerRecord<Key: Sendable, Value: Sendable>: Sendable {
    /// The topic to write to.
    public var topic: String
    /// The partition to write to; `nil` lets the partitioner choose (by key hash when there is a key).
    public var partition: Int32?
    /// The key; `nil` writes a null key.
    public var key: Key?
    /// The value; `nil` writes a null value (a tombstone on compacted topics).
    public var value: Value?
    /// Headers, in order.
    public var headers: [KafkaHeader]
    /// The create time to record; `nil` uses the current time.
    public var timestamp: KafkaTimestamp?

    // Inlinable: made per record in the caller's pipeline, where the generic init alone copied
    // its key and value through value witnesses.
    /// A record for `topic`.
    @inlinable
    public init(
        topic: String, partition: Int32? = nil, key: Key? = nil, value: Value?, headers: [KafkaHeader] = [],
        timestamp: KafkaTimestamp? = nil
    ) {
        self.topic = topic
        self.partition = partition
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp
    }
}

/// Where a record was written: Kafka's `RecordMetadata`.
public struct RecordMetadata: Sendable, Hashable {
    /// The topic written to.
    public let topic: String
    /// The partition written to.
    public let partition: Int32
    /// The offset the broker assigned.
    public let offset: Int64
    /// The record's timestamp as stored, if known.
    public let timestamp: KafkaTimestamp?

    /// Metadata for a record written at `offset` of `topic`-`partition`.
    public init(topic: String, partition: Int32, offset: Int64, timestamp: KafkaTimestamp? = nil) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
    }
}
