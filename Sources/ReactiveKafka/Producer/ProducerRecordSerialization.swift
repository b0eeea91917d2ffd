extension ProducerSettings {
    /// The record's key and value as bytes.
    /// - Throws: ``KafkaError/Kind/serialization`` naming the topic and which part failed.
    @inlinable
    func serialize(_ record: ProducerRecord<Key, Value>) throws(KafkaError) -> (key: SerializedBytes?, value: SerializedBytes?) {
        var key: SerializedBytes?
        var value: SerializedBytes?
        if let k = record.key {
            do { key = try keySerializer.serialize(k) } catch {
                throw KafkaError(.serialization, "serialising the key of a record for topic \(record.topic) failed: \(error)")
            }
        }
        if let v = record.value {
            do { value = try valueSerializer.serialize(v) } catch {
                throw KafkaError(.serialization, "serialising the value of a record for topic \(record.topic) failed: \(error)")
            }
        }
        return (key, value)
    }
}
