import CRdKafka

/// Offset reset protection (``OffsetResetProtection``), on the engine thread.
extension ConsumerEngine {
    /// Reads the group's committed offsets of newly assigned partitions: the
    /// positions a reset must not jump back from.
    func learnCommittedOffsets(_ partitions: Set<TopicPartition>) {
        do {
            // A seek in the handler's onAssign (just before) already set where to protect from.
            for (p, offset) in try restrictedConsumer.committed(partitions.filter { resetBase[$0] == nil }) {
                resetBase[p] = offset
            }
        } catch {
            logger.warning(
                "offset reset protection could not read the committed offsets; it protects these partitions from their first commit on",
                metadata: ["partitions": "\(partitions.sorted())", "error": "\(error)"])
        }
    }

    /// Drops the chunks of partitions that jumped back past the threshold and
    /// seeks those partitions back to their committed offset.
    func protectAgainstOffsetReset(_ chunks: [RecordChunk]) -> [RecordChunk] {
        guard let protection = configuration.offsetResetProtection else { return chunks }
        let committed = resetBase
        var reset: [TopicPartition: (found: Int64, committed: Int64, reason: String)] = [:]
        for chunk in chunks where reset[chunk.topicPartition] == nil {
            let p = chunk.topicPartition
            let message = chunk.batch.messages[chunk.range.lowerBound]!
            let offset = message.pointee.offset
            let base = committed[p]
            if let threshold = protection.offsetThreshold, let base, offset < base - threshold {
                reset[p] = (
                    offset, base, "\(base - offset) offsets behind the committed offset (threshold \(threshold))"
                )
                continue
            }
            if let threshold = protection.timeThreshold {
                var kind = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
                let first = rd_kafka_message_timestamp(message, &kind)
                let last = rd_kafka_message_timestamp(chunk.batch.messages[chunk.range.upperBound - 1]!, &kind)
                if kind != RD_KAFKA_TIMESTAMP_NOT_AVAILABLE {
                    if let newest = newestTimestamp[p], first < newest - Int64(threshold.milliseconds), let base,
                        base > offset
                    {
                        reset[p] = (
                            offset, base,
                            "\(newest - first) ms older than the newest record read (threshold \(threshold))"
                        )
                        continue
                    }
                    newestTimestamp[p] = max(newestTimestamp[p] ?? .min, last)
                }
            }
        }
        guard !reset.isEmpty else { return chunks }
        for (p, jump) in reset.sorted(by: { $0.key < $1.key }) {
            logger.warning(
                "offset reset protection: \(p) jumped back to offset \(jump.found), \(jump.reason); seeking back to the committed offset \(jump.committed) instead of reprocessing",
                metadata: ["partition": "\(p)"])
        }
        do {
            try RestrictedConsumer(handle: handle, timeout: configuration.commitTimeout).seek(
                reset.mapValues(\.committed))
        } catch {
            fail(
                KafkaError(
                    error.kind,
                    "offset reset protection could not seek back to the committed offsets: \(error.message)",
                    code: error.code))
        }
        return chunks.filter { reset[$0.topicPartition] == nil }
    }
}
