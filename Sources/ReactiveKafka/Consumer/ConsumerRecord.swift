import CRdKafka
import Synchronization

/// A record read from Kafka, with its key and value deserialised.
public struct ConsumerRecord<Key: Sendable, Value: Sendable>: Sendable {
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
    let origin: RecordOrigin

    /// The topic it was read from.
    public var topic: String { origin.topic }

    /// Its headers, in order.
    ///
    /// A consumed record reads them from its fetched message on each access: most
    /// consumers never look at headers, and parsing them costs librdkafka an allocation
    /// per record even when there are none.
    public var headers: [KafkaHeader] { origin.headers }

    /// A record; the consumer creates these, tests may too.
    public init(
        topic: String, partition: Int32, offset: Int64, timestamp: KafkaTimestamp? = nil,
        key: Key, value: Value, headers: [KafkaHeader] = []
    ) {
        self.init(
            partition: partition, offset: offset, timestamp: timestamp, key: key, value: value,
            origin: .given(topic: topic, headers: headers))
    }

    init(partition: Int32, offset: Int64, timestamp: KafkaTimestamp?, key: Key, value: Value, origin: RecordOrigin) {
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value
        self.origin = origin
    }

    /// The partition it was read from.
    public var topicPartition: TopicPartition { TopicPartition(topic, partition) }
}

/// Where a record's topic and headers come from: given, or the fetched librdkafka message
/// (kept alive by its batch, which also knows the message's topic).
///
/// A consumed record holds one reference for both, taken when it is read; its topic and
/// headers are looked up when asked for.
enum RecordOrigin: @unchecked Sendable {
    case given(topic: String, headers: [KafkaHeader])
    case fetched(MessageBatch, index: Int)

    /// librdkafka parses a message's headers on first access and caches them in the
    /// message, which is not thread-safe; records are Sendable, so reads are serialised.
    /// Only readers of headers take the lock.
    private static let parsing = Mutex(())

    var topic: String {
        switch self {
        case .given(let topic, _): topic
        case .fetched(let batch, let index): batch.topic(at: index)
        }
    }

    var headers: [KafkaHeader] {
        switch self {
        case .given(_, let headers):
            return headers
        case .fetched(let batch, let index):
            // unsafelyUnwrapped: a batch's first `count` messages are set at init and never cleared.
            return Self.parsing.withLock { _ in Self.read(batch.messages[index].unsafelyUnwrapped, batch) }
        }
    }

    /// The value of the last header named `name` as UTF-8 text; nil when there is none or
    /// its value is null. A fetched record looks up just that header, copying no other.
    func lastHeaderString(named name: String) -> String? {
        switch self {
        case .given(_, let headers):
            return headers.last { $0.key == name }?.value?.string
        case .fetched(let batch, let index):
            return Self.parsing.withLock { _ in
                var hdrs: OpaquePointer?
                guard
                    rd_kafka_message_headers(batch.messages[index].unsafelyUnwrapped, &hdrs)
                        == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs
                else { return nil }
                var value: UnsafeRawPointer?
                var size = 0
                guard rd_kafka_header_get_last(hdrs, name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR, let value
                else { return nil }
                return String(decoding: UnsafeRawBufferPointer(start: value, count: size), as: UTF8.self)
            }
        }
    }

    private static func read(_ message: UnsafeMutablePointer<rd_kafka_message_t>, _ owner: MessageBatch)
        -> [KafkaHeader]
    {
        var hdrs: OpaquePointer?
        guard rd_kafka_message_headers(message, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs else { return [] }
        var result: [KafkaHeader] = []
        var index = 0
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while rd_kafka_header_get_all(hdrs, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            result.append(
                KafkaHeader(
                    key: name.map { String(cString: $0) } ?? "",
                    value: value.map { KafkaBytes(owner: owner, pointer: $0, count: size) }))
            index += 1
        }
        return result
    }
}
