import CRdKafka

/// Seeks: rewinds and starting positions that sources ask for, and the seeks librdkafka cannot
/// take yet. librdkafka refuses (`_STATE`) to seek a partition until its fetcher has started,
/// which it does only once it has looked up where an assigned partition starts (a round trip to
/// the group coordinator, longer while earlier commits or revokes are outstanding). Such a seek
/// waits for the partition's first fetched record or end-of-partition event (both come only
/// from a started fetcher), and the records fetched before it are dropped.
extension ConsumerEngine {
    /// Rewinds `offsets`' partitions: reading resumes at the given offsets, and (with
    /// `droppingFetched`) records of them buffered or handed out but not yet emitted are dropped.
    /// A partition no longer assigned (a rebalance took it since the offsets were looked up) is
    /// left alone: its next owner reads it, and librdkafka refuses to seek it (`_STATE`).
    /// `beforeSeeking` gets the partitions that are sought, on the engine thread, before any record
    /// of them is read again. A partition whose fetching has not started cannot be rewound (the
    /// rewind fails, `_STATE`): it may be a new assignment of it, which starts at its own commit.
    func rewind(
        _ offsets: [TopicPartition: Int64], droppingFetched: Bool = true,
        beforeSeeking: @escaping @Sendable (Set<TopicPartition>) -> Void = { _ in }
    ) async throws(KafkaError) {
        try await withConsumer { consumer throws(KafkaError) in
            let assigned = try consumer.assignment()
            let mine = offsets.filter { assigned.contains($0.key) }
            guard !mine.isEmpty else { return }
            if droppingFetched { self.invalidate(Set(mine.keys)) }
            beforeSeeking(Set(mine.keys))
            try consumer.seek(mine, waitingForFetchers: false)
        }
    }

    /// Starts announced partitions at the offsets the application keeps (manual-offset
    /// partitioned sources), before their sub-streams exist, and returns the announcements
    /// to emit. An announcement a rebalance superseded while the offsets were looked up (its
    /// partition revoked since, and perhaps assigned again: a later announcement of its own
    /// follows) is dropped unsought. A sought partition's records fetched before are dropped,
    /// so its announcement carries the epoch after the seek.
    func start(_ announced: [Announcement], at offsets: [TopicPartition: Int64]) async throws(KafkaError)
        -> [Announcement]
    {
        try await withConsumer { consumer throws(KafkaError) in
            let current = announced.filter { self.keeps($0.partition, takenAt: $0.epoch) }
            let sought = offsets.filter { offset in current.contains { $0.partition == offset.key } }
            guard !sought.isEmpty else { return current }
            self.invalidate(Set(sought.keys))
            try consumer.seek(sought)
            let epoch = self.revocationEpoch.load(ordering: .acquiring)
            return current.map {
                sought[$0.partition] == nil ? $0 : Announcement(partition: $0.partition, epoch: epoch)
            }
        }
    }

    /// Seeks waiting for their partitions' fetchers (``seeksAwaitingFetcher``) are made once
    /// those partitions fetched records (in `chunks`) or reached their end (`ends`), and what
    /// they fetched before is dropped; returns the chunks left (engine thread).
    func seekPartitionsNowFetching(_ chunks: [RecordChunk], ends: inout [(TopicPartition, Int64)])
        -> [RecordChunk]
    {
        var fetching = Set(ends.map(\.0))
        for chunk in chunks { fetching.insert(chunk.topicPartition) }
        let due = seeksAwaitingFetcher.filter { fetching.contains($0.key) }
        guard !due.isEmpty else { return chunks }
        for p in due.keys { seeksAwaitingFetcher[p] = nil }
        // Where it started is no end for the application: the end after the seek is reported.
        ends.removeAll { due[$0.0] != nil }
        let assigned = state.withLock { $0.assigned }
        do throws(KafkaError) {
            try restrictedConsumer.seek(due.filter { assigned.contains($0.key) })
        } catch {
            fail(error)
            return []
        }
        logger.debug("sought partitions once their fetching started", metadata: ["offsets": "\(due)"])
        return chunks.filter { due[$0.topicPartition] == nil }
    }

    /// librdkafka found no committed offset for `partition` (or its offset out of range) and
    /// `auto.offset.reset` is `error`: its fetching stops, so a seek waiting for it, or asked
    /// later, would wait forever; such a seek fails the stream instead (engine thread).
    func fetchingStoppedByReset(_ partition: TopicPartition) {
        fetchersStoppedByReset.insert(partition)
        guard let offset = seeksAwaitingFetcher.removeValue(forKey: partition) else { return }
        fail(
            KafkaError(
                .invalidConfiguration,
                "\(partition) cannot be sought to offset \(offset): librdkafka stopped reading it (no committed offset, or one out of range, and auto.offset.reset is error), and only a started partition can be sought; set auto.offset.reset to earliest or latest (the seek then moves it to the offset given)"
            ))
    }

    /// Seeks asked for `partitions` wait for nothing once they are taken away (engine thread).
    func forgetSeeks(of partitions: Set<TopicPartition>) {
        for p in partitions {
            seeksAwaitingFetcher[p] = nil
            fetchersStoppedByReset.remove(p)
        }
    }
}
