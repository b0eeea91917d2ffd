import Logging
import ServiceLifecycle
import StreamKit

extension KafkaTable {
    /// Restores the table, then keeps it current until ``close()``, cancellation or a
    /// graceful shutdown (returns), or a failure (throws a ``KafkaTableError``, or
    /// `CancellationError`). Its consumer and store are released however it ends.
    /// A table runs once.
    public func run() async throws {
        guard lifecycle.withLock({ $0.start() }) else {
            throw KafkaTableError(.closed, "the table of \(topic) already ran or was closed; create a new KafkaTable")
        }
        var failure: (any Error)?
        do {
            try await withGracefulShutdownHandler {
                try await store.open()
                switch options.scope {
                case .global: try await readGlobal()
                case .partitionAligned: try await readPartitionAligned()
                }
            } onGracefulShutdown: {
                self.close()
            }
        } catch {
            failure = KafkaTableError.wrapping(error)
        }
        // However the run ended: the consumer leaves and closes (bounded by its closeTimeout).
        if let control = lifecycle.withLock({ $0.control }) {
            control.stop()
            await control.shutdown()
        }
        await store.close()
        let ended = failure is CancellationError ? nil : failure
        let waiters = lifecycle.withLock { $0.finish(failure) }
        let closed: any Error = failure ?? KafkaTableError(.closed, "the table was closed before its restore completed")
        for waiter in waiters { waiter.resume(returning: .failure(closed)) }
        hub.finish(ended)
        if let failure { throw failure }
    }

    /// Every partition, without a group: reads from where the store is (or the beginning)
    /// and follows.
    private func readGlobal() async throws {
        var raw = settings.rawBytes()
        raw.properties["group.id"] = nil
        raw.properties["auto.offset.reset"] = "earliest"
        raw.properties["enable.partition.eof"] = "true"
        let metadata = try MetadataClient(raw)
        defer { metadata.close() }
        let partitions = try await metadata.partitions(of: topic)
        guard !partitions.isEmpty else {
            throw KafkaTableError(.kafka, "topic \(topic) has no partitions; create it before starting its table")
        }
        let stored = try await store.assign(Set(partitions))
        let start = try await startingPositions(partitions.map { TopicPartition(topic, $0) }, stored: stored, metadata)
        metadata.close()
        let (keys, values) = (raw.keyDeserializer, raw.valueDeserializer)
        let source = Consumer.makeSource(
            raw, subscription: .assignmentWithOffset(start), logger: logger, committable: false,
            onPartitionEnd: partitionEndWatch()
        ) { index, chunk, _ in
            try RecordReader.record(index, chunk, key: keys, value: values)
        }
        guard lifecycle.withLock({ $0.attach(source.materialized) }) else { return }
        try await follow(source.base)
    }

    /// Where each of `partitions` starts (where the store left it, or its first offset),
    /// and the end offsets the restore must reach.
    func startingPositions(_ partitions: [TopicPartition], stored: [Int32: Int64], _ metadata: MetadataClient)
        async throws -> [TopicPartition: Int64]
    {
        let first = try await metadata.beginningOffsets(partitions)
        let end = try await metadata.endOffsets(partitions)
        var start: [TopicPartition: Int64] = [:]
        for partition in partitions {
            let low = first[partition] ?? 0
            start[partition] = max(stored[partition.partition] ?? low, low)
        }
        let starts = Dictionary(uniqueKeysWithValues: start.map { ($0.key.partition, $0.value) })
        let ends = Dictionary(uniqueKeysWithValues: end.map { ($0.key.partition, $0.value) })
        updateRestore { $0.positioned(start: starts, end: ends) }
        return start
    }

    /// Tells the restore when the consumer reaches the end of a partition of the table's topic.
    func partitionEndWatch() -> @Sendable (TopicPartition, Int64, Int64?) -> Void {
        let topic = topic
        return { [weak self] partition, end, afterLastRecord in
            guard partition.topic == topic else { return }
            self?.updateRestore { $0.ended(partition.partition, at: end, afterLastRecord: afterLastRecord) }
        }
    }

    /// Applies the records of `records` batch by batch (one store transaction each) and
    /// publishes their changes, until the records end.
    func follow<Records: AsyncSequence & Sendable>(_ records: Records) async throws
    where Records.Element == ConsumerRecord<KafkaBytes?, KafkaBytes?> {
        let batches = records.batch(
            max: options.maxBatchRecords, seed: { RecordPile($0) }, aggregate: { $0.append($1) })
        for try await pile in batches {
            let batch = try makeBatch(pile.records)
            let changes = try await store.apply(batch)
            hub.publish(changes)
            updateRestore { $0.reached(batch.positions) }
        }
    }

    /// Deserialises `records` into a batch; an undeserialisable record fails it or is skipped.
    private func makeBatch(_ records: [ConsumerRecord<KafkaBytes?, KafkaBytes?>]) throws(KafkaTableError) -> TableBatch<
        Key, Value
    > {
        var batch = TableBatch<Key, Value>()
        batch.entries.reserveCapacity(records.count)
        var skips = 0
        defer { count(read: records.count, skipped: skips) }
        for record in records {
            batch.positions[record.partition] = record.offset + 1
            guard let keyBytes = record.key else { continue }
            let key: Key
            let value: Value?
            do {
                key = try settings.keyDeserializer.deserialize(keyBytes)
            } catch {
                if options.onUndeserializable == .skip {
                    skips += 1
                    continue
                }
                throw .undeserializable(
                    "key", topic: record.topic, partition: record.partition, offset: record.offset, error)
            }
            if let valueBytes = record.value {
                do {
                    value = try settings.valueDeserializer.deserialize(valueBytes)
                } catch {
                    if options.onUndeserializable == .skip {
                        skips += 1
                        continue
                    }
                    throw .undeserializable(
                        "value", topic: record.topic, partition: record.partition, offset: record.offset, error)
                }
            } else {
                value = nil
            }
            batch.entries.append(
                TableEntry(
                    partition: record.partition, key: key, value: value, keyBytes: keyBytes, valueBytes: record.value))
        }
        return batch
    }
}
