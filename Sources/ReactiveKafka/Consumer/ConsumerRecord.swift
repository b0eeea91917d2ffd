/// A record read from Kafka, with its key and value deserialised.
public struct ConsumerRecord<Key: Sendable, Value: Sendable>: Sendable {
    /// The topic it was read from.
    public let topic: String
    /// The partition it was read from.
    public let partition: Int32
    /// Its offset in the partition.
    public let offset: Int64
    /// When it was produced or appended, if the broker reported it.
    public let timestamp: KafkaTimestamp?
    /// The deserialised key.
    public let key: Key
    /// The deserialised value.
    public let value: Value
    /// Its headers, in order.
    public let headers: [KafkaHeader]

    /// A record; the consumer creates these, tests may too.
    public init(
        topic: String, partition: Int32, offset: Int64, timestamp: KafkaTimestamp? = nil,
        key: Key, value: Value, headers: [KafkaHeader] = []
    ) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value
        self.headers = headers
    }

    /// The partition it was read from.
    public var topicPartition: TopicPartition { TopicPartition(topic, partition) }
}
