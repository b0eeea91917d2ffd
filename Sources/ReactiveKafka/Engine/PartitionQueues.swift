import CRdKafka

/// The fetch queues of the partitions a consumer engine routes to its message queue, each held
/// until it is routed again or the engine closes (engine thread only).
///
/// Why held: librdkafka 2.0.2 can leave a partition it no longer lists kept alive by an op on the
/// partition's own queue. Removing a partition from the assignment stops its fetcher, which clears
/// the queue's forwarding, and then resumes it (the consumer's close may stop it once more); each
/// step queues a version barrier holding a reference to the partition, on that queue, now
/// forwarded nowhere. A partition its topic lists is purged when the handle is destroyed, but one
/// assigned and removed before the topic's metadata arrived is listed nowhere: the barrier's
/// reference keeps it, its topic and the handle's op queue allocated for good (LeakSanitizer saw
/// 2,864 bytes in 10 blocks per such partition). Routing the queue again moves what it holds to
/// the message queue, whose destruction frees it; librdkafka's API gives no other way to reach it.
struct PartitionQueues {
    private var queues: [TopicPartition: OpaquePointer] = [:]

    /// Routes `partition`'s records to `destination`; its previously held queue (a partition
    /// object librdkafka may have replaced since) is routed there too and let go.
    mutating func forward(_ partition: TopicPartition, of handle: OpaquePointer, to destination: OpaquePointer) {
        guard let queue = rd_kafka_queue_get_partition(handle, partition.topic, partition.partition) else { return }
        rd_kafka_queue_forward(queue, destination)
        if let previous = queues.updateValue(queue, forKey: partition) {
            Self.release(previous, to: destination)
        }
    }

    /// Once the consumer is closed, before `destination` is destroyed: routes every held queue
    /// there and lets it go, so that destroying `destination` frees what they held (and any op
    /// librdkafka queues on them later is freed as it arrives at the destroyed queue).
    mutating func releaseAll(to destination: OpaquePointer) {
        for queue in queues.values { Self.release(queue, to: destination) }
        queues.removeAll()
    }

    private static func release(_ queue: OpaquePointer, to destination: OpaquePointer) {
        // Forwarding moves the ops already on the queue to `destination`.
        rd_kafka_queue_forward(queue, destination)
        rd_kafka_queue_destroy(queue)
    }
}
