import CRdKafka

/// The consumer group a transaction's consumed offsets belong to: librdkafka's
/// `rd_kafka_consumer_group_metadata_t`, sent with the offsets
/// (`send_offsets_to_transaction`) so that the group coordinator commits them
/// atomically with the transaction.
///
/// Taken from a running consumer it also carries the group generation and
/// member id (KIP-447), which lets the broker fence a zombie whose partitions
/// were reassigned. Built from a group id alone (``init(groupId:)``) it has
/// neither: offsets still commit atomically, without that fencing.
public final class ConsumerGroupMetadata: Sendable, CustomStringConvertible {
    private let handle: Handle
    /// The consumer group's id.
    public let groupId: String

    struct Handle: @unchecked Sendable {
        let pointer: OpaquePointer
    }

    /// Metadata naming only the group (no generation, no member id).
    /// - Throws: ``KafkaError/Kind/invalidConfiguration`` for an empty group id.
    public init(groupId: String) throws(KafkaError) {
        guard !groupId.isEmpty else {
            throw KafkaError(.invalidConfiguration, "consumer group metadata needs a group id; pass the consumer's group.id")
        }
        guard let pointer = rd_kafka_consumer_group_metadata_new(groupId) else {
            throw KafkaError(.fatal, "librdkafka could not create consumer group metadata for group \(groupId)")
        }
        self.handle = Handle(pointer: pointer)
        self.groupId = groupId
    }

    /// Takes ownership of `pointer` (from `rd_kafka_consumer_group_metadata(rk)`).
    init(taking pointer: OpaquePointer, groupId: String) {
        self.handle = Handle(pointer: pointer)
        self.groupId = groupId
    }

    deinit { rd_kafka_consumer_group_metadata_destroy(handle.pointer) }

    /// The librdkafka object, valid while `self` is alive.
    var pointer: OpaquePointer { handle.pointer }

    public var description: String { "ConsumerGroupMetadata(\(groupId))" }
}
