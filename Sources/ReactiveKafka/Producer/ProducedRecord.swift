/// A record a producer stage wrote and where it was written: the parts of a
/// ``ProducerResult/multi(_:passThrough:)`` result.
public struct ProducedRecord<Key: Sendable, Value: Sendable>: Sendable {
    /// Where the broker wrote it.
    public let metadata: RecordMetadata
    /// The record as it was sent.
    public let record: ProducerRecord<Key, Value>

    /// `record`, written where `metadata` says.
    public init(metadata: RecordMetadata, record: ProducerRecord<Key, Value>) {
        self.metadata = metadata
        self.record = record
    }
}
