import CRdKafka

/// The consumer, as a partition assignment handler (or ``ConsumerControl/withConsumer(_:)``)
/// may use it: Alpakka's `RestrictedConsumer`.
///
/// Valid only during the call it is passed to, on the consumer's own thread:
/// the calls block that thread (never a Swift task) and take effect before
/// partitions move. It cannot poll, subscribe or close. Offsets are Kafka
/// offsets: for a partition, the next record to read.
public struct RestrictedConsumer {
    let handle: OpaquePointer
    /// How long blocking broker round trips (committed, offsets for times, watermarks) may take.
    let timeout: Duration
    /// Tells the engine where partitions were sought (offset reset protection).
    let onSeek: (([TopicPartition: Int64]) -> Void)?
    /// Hands the engine seeks that must wait for their partitions' fetchers to start.
    let awaitFetchers: (([TopicPartition: Int64]) -> Void)?

    init(
        handle: OpaquePointer, timeout: Duration, onSeek: (([TopicPartition: Int64]) -> Void)? = nil,
        awaitFetchers: (([TopicPartition: Int64]) -> Void)? = nil
    ) {
        self.handle = handle
        self.timeout = timeout
        self.onSeek = onSeek
        self.awaitFetchers = awaitFetchers
    }

    /// The partitions currently assigned to this consumer.
    public func assignment() throws(KafkaError) -> Set<TopicPartition> {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        let err = rd_kafka_assignment(handle, &list)
        defer { if let list { rd_kafka_topic_partition_list_destroy(list) } }
        try Self.check(err, "reading the assignment")
        return Set(PartitionList.partitions(list))
    }

    /// Moves the fetch position of each partition to its offset; the next
    /// record read from it is at that offset. A partition assigned a moment ago
    /// (in `onAssign`) whose fetching has not started yet is sought as soon as it
    /// starts, before any of its records is emitted.
    public func seek(_ offsets: [TopicPartition: Int64]) throws(KafkaError) {
        try seek(offsets, waitingForFetchers: true)
    }

    /// ``seek(_:)``; without `waitingForFetchers`, a partition whose fetching has not started
    /// fails the seek (`_STATE`) instead of being sought once it starts.
    func seek(_ offsets: [TopicPartition: Int64], waitingForFetchers: Bool) throws(KafkaError) {
        guard !offsets.isEmpty else { return }
        let unstarted = try seekStartedFetchers(offsets)
        if !unstarted.isEmpty {
            guard waitingForFetchers, let awaitFetchers else { throw Self.notStarted(unstarted) }
            // Only this member's partitions start fetching here: another member's would keep the
            // seek until they are assigned to this one, perhaps much later.
            let assigned = try assignment()
            let foreign = unstarted.filter { !assigned.contains($0.key) }
            if !foreign.isEmpty {
                throw KafkaError.fromCode(
                    RD_KAFKA_RESP_ERR__STATE, "seeking \(foreign.keys.sorted()): not assigned to this consumer")
            }
            awaitFetchers(try absolute(unstarted))
        }
        onSeek?(offsets.filter { unstarted[$0.key] == nil })
    }

    /// Seeks `offsets` and returns those librdkafka cannot seek yet: partitions whose fetcher
    /// has not started (assigned a moment ago, while it looks up where they start: `_STATE`),
    /// whose earlier fetcher is still stopping (`_PREV_IN_PROGRESS`), or whose fetcher started
    /// while the seek was queued, which outdates it (`_OUTDATED`). Throws on any other refusal.
    private func seekStartedFetchers(_ offsets: [TopicPartition: Int64]) throws(KafkaError) -> [TopicPartition: Int64] {
        let list = PartitionList.make(offsets: offsets)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        if let error = rd_kafka_seek_partitions(handle, list, Int32(timeout.milliseconds)) {
            throw KafkaError.consuming(error, "seeking \(offsets.keys.sorted())")
        }
        var unstarted: [TopicPartition: Int64] = [:]
        for (partition, err) in PartitionList.errors(list) {
            if err == RD_KAFKA_RESP_ERR__STATE || err == RD_KAFKA_RESP_ERR__PREV_IN_PROGRESS
                || err == RD_KAFKA_RESP_ERR__OUTDATED
            {
                unstarted[partition] = offsets[partition]
            } else {
                try Self.check(err, "seeking \(partition)")
            }
        }
        return unstarted
    }

    /// The error of a seek that cannot wait for the partitions' fetchers.
    private static func notStarted(_ partitions: [TopicPartition: Int64]) -> KafkaError {
        KafkaError.fromCode(
            RD_KAFKA_RESP_ERR__STATE,
            "seeking \(partitions.keys.sorted()): their fetching has not started yet (assigned a moment ago)")
    }

    /// A seek that waits is made later, at the partition's first fetched record: the beginning
    /// and the end are looked up now, so that they mean what they meant when the seek was asked.
    private func absolute(_ offsets: [TopicPartition: Int64]) throws(KafkaError) -> [TopicPartition: Int64] {
        let logical = offsets.filter { $0.value < 0 }
        guard !logical.isEmpty else { return offsets }
        let ends = [Int64(RD_KAFKA_OFFSET_BEGINNING), Int64(RD_KAFKA_OFFSET_END)]
        guard logical.values.allSatisfy({ ends.contains($0) }) else {
            throw KafkaError(
                .invalidConfiguration,
                "seeking \(logical.keys.sorted()) to \(logical.values.sorted()): only offsets ≥ 0, the beginning and the end can be sought"
            )
        }
        let marks = try watermarks(Set(logical.keys))
        var absolute = offsets
        for (p, offset) in logical {
            absolute[p] = offset == Int64(RD_KAFKA_OFFSET_BEGINNING) ? marks[p]?.low : marks[p]?.high
        }
        return absolute
    }

    /// Seeks `partitions` to their first available record.
    public func seekToBeginning(_ partitions: Set<TopicPartition>) throws(KafkaError) {
        try seek(Dictionary(uniqueKeysWithValues: partitions.map { ($0, Int64(RD_KAFKA_OFFSET_BEGINNING)) }))
    }

    /// Seeks `partitions` past their last record (only new records are read).
    public func seekToEnd(_ partitions: Set<TopicPartition>) throws(KafkaError) {
        try seek(Dictionary(uniqueKeysWithValues: partitions.map { ($0, Int64(RD_KAFKA_OFFSET_END)) }))
    }

    /// Commits `offsets` (the next offset to read, per partition) and waits for the broker.
    ///
    /// Throws ``KafkaError/Kind/notAssigned`` without committing anything when
    /// a partition is not assigned to this consumer (in `onRevoke` the revoked
    /// partitions still are), and ``KafkaError/Kind/commitFailed`` with the
    /// broker's code when the coordinator refuses the commit.
    public func commitSync(_ offsets: [TopicPartition: Int64]) throws(KafkaError) {
        guard !offsets.isEmpty else { return }
        let notAssigned = Set(offsets.keys).subtracting(try assignment())
        if !notAssigned.isEmpty { throw KafkaError.notAssigned(notAssigned) }
        let list = PartitionList.make(offsets: offsets)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_commit(handle, list, 0)
        if err == RD_KAFKA_RESP_ERR__NO_OFFSET { return }
        try Self.check(err, "committing \(offsets.keys.sorted())", kind: .commitFailed)
        for (partition, err) in PartitionList.errors(list) {
            try Self.check(err, "committing \(partition)", kind: .commitFailed)
        }
    }

    /// The group's committed offsets of `partitions` (absent: nothing committed yet).
    public func committed(_ partitions: Set<TopicPartition>) throws(KafkaError) -> [TopicPartition: Int64] {
        guard !partitions.isEmpty else { return [:] }
        let list = PartitionList.make(partitions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        try Self.check(rd_kafka_committed(handle, list, Int32(timeout.milliseconds)), "reading committed offsets")
        return PartitionList.offsets(list).filter { $0.value >= 0 }
    }

    /// The fetch position of `partitions`: the offset of the next record to be
    /// fetched (absent: no position yet).
    public func position(_ partitions: Set<TopicPartition>) throws(KafkaError) -> [TopicPartition: Int64] {
        guard !partitions.isEmpty else { return [:] }
        let list = PartitionList.make(partitions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        try Self.check(rd_kafka_position(handle, list), "reading positions")
        return PartitionList.offsets(list).filter { $0.value >= 0 }
    }

    /// The first offset still stored of each partition.
    public func beginningOffsets(_ partitions: Set<TopicPartition>) throws(KafkaError) -> [TopicPartition: Int64] {
        try watermarks(partitions).mapValues(\.low)
    }

    /// The offset after the last record of each partition (the next offset to be written).
    public func endOffsets(_ partitions: Set<TopicPartition>) throws(KafkaError) -> [TopicPartition: Int64] {
        try watermarks(partitions).mapValues(\.high)
    }

    /// For each partition, the first offset whose timestamp is at or after the
    /// given milliseconds since the epoch (absent: no such record).
    public func offsetsForTimes(_ timestamps: [TopicPartition: Int64]) throws(KafkaError) -> [TopicPartition: Int64] {
        guard !timestamps.isEmpty else { return [:] }
        let list = PartitionList.make(offsets: timestamps)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        try Self.check(
            rd_kafka_offsets_for_times(handle, list, Int32(timeout.milliseconds)), "looking up offsets for times")
        return PartitionList.offsets(list).filter { $0.value >= 0 }
    }

    /// The consumer group metadata a transactional producer sends with the
    /// consumed offsets (`send_offsets_to_transaction`, KIP-447).
    public func groupMetadata() throws(KafkaError) -> ConsumerGroupMetadata {
        guard let metadata = rd_kafka_consumer_group_metadata(handle) else {
            throw KafkaError(
                .illegalState,
                "the consumer has no group metadata: transactional sources need a consumer group (ConsumerSettings.withGroupId)"
            )
        }
        return ConsumerGroupMetadata(metadata)
    }

    private func watermarks(_ partitions: Set<TopicPartition>) throws(KafkaError) -> [TopicPartition: (
        low: Int64, high: Int64
    )] {
        var result: [TopicPartition: (low: Int64, high: Int64)] = [:]
        for partition in partitions {
            var low: Int64 = -1
            var high: Int64 = -1
            let err = rd_kafka_query_watermark_offsets(
                handle, partition.topic, partition.partition, &low, &high, Int32(timeout.milliseconds))
            try Self.check(err, "reading the offsets of \(partition)")
            result[partition] = (low, high)
        }
        return result
    }

    private static func check(_ err: rd_kafka_resp_err_t, _ what: String, kind: KafkaError.Kind? = nil)
        throws(KafkaError)
    {
        guard err != RD_KAFKA_RESP_ERR_NO_ERROR else { return }
        throw KafkaError.fromCode(err, what, kind: kind ?? .kafka)
    }
}

/// A consumer's group membership (group id, generation, member id), as a
/// transactional producer sends it with consumed offsets. Owns librdkafka's copy.
public final class ConsumerGroupMetadata: @unchecked Sendable {
    let pointer: OpaquePointer

    init(_ pointer: OpaquePointer) { self.pointer = pointer }

    deinit { rd_kafka_consumer_group_metadata_destroy(pointer) }
}
