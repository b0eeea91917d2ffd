import CRdKafka

/// Owns the librdkafka messages of one fetched batch and destroys them when
/// the last record (or `KafkaBytes` view) that refers to them is gone.
///
/// One allocation per batch, not per record: records and their key/value
/// bytes point into these messages.
final class MessageBatch: @unchecked Sendable {
    let messages: UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>
    let count: Int

    /// Takes ownership of the first `count` messages of `scratch`.
    init(copying scratch: UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>, count: Int) {
        self.messages = .allocate(capacity: count)
        self.messages.initialize(from: scratch, count: count)
        self.count = count
    }

    deinit {
        for i in 0..<count { rd_kafka_message_destroy(messages[i]) }
        messages.deallocate()
    }
}

/// A run of records of one partition within a fetched batch.
struct RecordChunk: BufferedChunk, @unchecked Sendable {
    let batch: MessageBatch
    let range: Range<Int>
    let topicPartition: TopicPartition
    let byteCount: Int
    var recordCount: Int { range.count }
}
