/// The records read while the table applied the previous batch. Extended by one task at a
/// time (the batch operator hands it over under its lock), so it is a class: appending does
/// not copy the records.
final class RecordPile: @unchecked Sendable {
    private(set) var records: [ConsumerRecord<KafkaBytes?, KafkaBytes?>]

    init(_ first: ConsumerRecord<KafkaBytes?, KafkaBytes?>) { records = [first] }

    func append(_ record: ConsumerRecord<KafkaBytes?, KafkaBytes?>) -> RecordPile {
        records.append(record)
        return self
    }
}

extension ConsumerSettings {
    /// These settings reading raw bytes: a table deserialises itself, to name or skip a bad record and see tombstones.
    func rawBytes() -> ConsumerSettings<KafkaBytes?, KafkaBytes?> {
        var raw = ConsumerSettings<KafkaBytes?, KafkaBytes?>(
            keyDeserializer: .optionalBytes, valueDeserializer: .optionalBytes, properties: properties)
        raw.closeTimeout = closeTimeout
        raw.stopTimeout = stopTimeout
        raw.commitTimeout = commitTimeout
        raw.commitTimeWarning = commitTimeWarning
        raw.maxBufferedBytes = maxBufferedBytes
        raw.maxBatchSize = maxBatchSize
        raw.brokerUnreachableTimeout = brokerUnreachableTimeout
        raw.statisticsInterval = statisticsInterval
        raw.rebalanceSafeCommitTimeout = rebalanceSafeCommitTimeout
        raw.partitionHandlerWarning = partitionHandlerWarning
        raw.offsetResetProtection = offsetResetProtection
        raw.metrics = metrics
        raw.stallThreshold = stallThreshold
        return raw
    }
}
