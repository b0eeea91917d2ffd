/// A record's key or value as librdkafka is to copy it, read in place from a `KafkaBytes`:
/// valid while the record that holds it lives.
@usableFromInline
struct BytesInPlace {
    @usableFromInline let start: UnsafeRawPointer?
    /// -1: no key or value (null).
    @usableFromInline let count: Int

    @inlinable
    init(start: UnsafeRawPointer?, count: Int) {
        self.start = start
        self.count = count
    }

    /// The bytes of `part`, which must be a `KafkaBytes?`: read through its address, so
    /// nothing is retained.
    @inlinable
    init<Part>(_ part: borrowing Part?) {
        self = withUnsafePointer(to: part) { address in
            address.withMemoryRebound(to: Optional<KafkaBytes>.self, capacity: 1) { bytes in
                guard let count = bytes.pointee?.count else { return BytesInPlace(start: nil, count: -1) }
                return BytesInPlace(start: bytes.pointee?.pointer, count: count)
            }
        }
    }
}

extension ProducerSettings {
    /// The record's key and value read in place when both are `KafkaBytes` written as they
    /// are (``Serializer/bytes``); nil otherwise, and then ``serialize(_:)`` applies.
    @inlinable
    func bytesInPlace(_ record: borrowing ProducerRecord<Key, Value>) -> (key: BytesInPlace, value: BytesInPlace)? {
        guard Key.self == KafkaBytes.self, Value.self == KafkaBytes.self,
            keySerializer.writesKafkaBytesAsIs, valueSerializer.writesKafkaBytesAsIs
        else { return nil }
        return (BytesInPlace(record.key), BytesInPlace(record.value))
    }

    /// The record's key and value as bytes.
    /// - Throws: ``KafkaError/Kind/serialization`` naming the topic and which part failed.
    @inlinable
    func serialize(_ record: ProducerRecord<Key, Value>) throws(KafkaError) -> (
        key: SerializedBytes?, value: SerializedBytes?
    ) {
        var key: SerializedBytes?
        var value: SerializedBytes?
        if let k = record.key {
            do { key = try keySerializer.serialize(k) } catch {
                throw KafkaError(
                    .serialization, "serialising the key of a record for topic \(record.topic) failed: \(error)")
            }
        }
        if let v = record.value {
            do { value = try valueSerializer.serialize(v) } catch {
                throw KafkaError(
                    .serialization, "serialising the value of a record for topic \(record.topic) failed: \(error)")
            }
        }
        return (key, value)
    }
}
