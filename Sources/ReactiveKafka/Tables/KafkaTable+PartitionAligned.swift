import StreamKit

extension KafkaTable {
    /// The partitions this group member owns, each read by a task of its own from where
    /// the store is; revoked partitions leave the table (a persistent store keeps them on disk).
    func readPartitionAligned() async throws {
        var raw = settings.rawBytes()
        raw.properties["enable.auto.commit"] = "false"
        raw.properties["auto.offset.reset"] = "earliest"
        raw.properties["enable.partition.eof"] = "true"
        let metadata = try MetadataClient(raw)
        defer { metadata.close() }
        let topic = topic
        let store = store
        let subscription = Subscription.topics(topic).withPartitionAssignmentHandler(FirstAssignmentWatch(table: self))
        let (keys, values) = (raw.keyDeserializer, raw.valueDeserializer)
        let source = Consumer.partitioned(
            raw,
            subscription: subscription.withRevokeCallback { [weak self] partitions in
                let numbers = Set(partitions.filter { $0.topic == topic }.map(\.partition))
                store.revoke(numbers)
                self?.updateRestore { $0.revoked(numbers) }
            },
            logger: logger, committable: false,
            offsetsOnAssign: { [weak self] partitions in
                guard let self else { return [:] }
                let mine = partitions.filter { $0.topic == topic }
                let stored = try await store.assign(Set(mine.map(\.partition)))
                return try await self.startingPositions(Array(mine), stored: stored, metadata)
            },
            onPartitionEnd: partitionEndWatch()
        ) { index, chunk, _ in
            try RecordReader.record(index, chunk, key: keys, value: values)
        }
        guard lifecycle.withLock({ $0.attach(source.materialized) }) else { return }
        try await withThrowingDiscardingTaskGroup { group in
            for try await assigned in source {
                let partition = assigned.source
                group.addTask { try await self.follow(partition) }
            }
        }
    }
}

/// Tells the restore about the table's first assignment, even an empty one (a member
/// with no partition is ready at once). Runs on the consumer's thread: keeps it short.
private struct FirstAssignmentWatch<Key: Hashable & Sendable, Value: Sendable>: PartitionAssignmentHandler {
    weak var table: KafkaTable<Key, Value>?

    func onAssign(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {
        table?.updateRestore { $0.assigned(Set(partitions.map(\.partition))) }
    }
    func onRevoke(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {}
    func onLost(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {}
    func onStop(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {}
}
