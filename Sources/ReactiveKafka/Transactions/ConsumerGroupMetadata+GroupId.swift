import CRdKafka

extension ConsumerGroupMetadata {
    /// Metadata naming only the consumer group `groupId`, for offsets consumed without a
    /// running consumer at hand. It carries no generation or member id, so the broker
    /// cannot fence a zombie by them (KIP-447); prefer ``RestrictedConsumer/groupMetadata()``.
    /// - Throws: ``KafkaError/Kind/invalidConfiguration`` for an empty group id.
    public convenience init(groupId: String) throws(KafkaError) {
        guard !groupId.isEmpty else {
            throw KafkaError(
                .invalidConfiguration, "consumer group metadata needs a group id; pass the consumer's group.id")
        }
        guard let pointer = rd_kafka_consumer_group_metadata_new(groupId) else {
            throw KafkaError(.fatal, "librdkafka could not create consumer group metadata for group \(groupId)")
        }
        self.init(pointer)
    }
}
