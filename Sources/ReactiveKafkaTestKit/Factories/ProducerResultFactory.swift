import ReactiveKafka
import StreamKit
import Synchronization

/// Builds what producer stages emit, without a cluster, to unit-test stream logic:
/// Alpakka's `ProducerResultFactory`.
public enum ProducerResultFactory {
    /// Where `record` would be written at `offset`: its own partition, or 0 when it names none.
    public static func recordMetadata<Key: Sendable, Value: Sendable>(
        _ record: ProducerRecord<Key, Value>, offset: Int64, timestamp: KafkaTimestamp? = nil
    ) -> RecordMetadata {
        RecordMetadata(
            topic: record.topic, partition: record.partition ?? 0, offset: offset,
            timestamp: timestamp ?? record.timestamp)
    }

    /// The result a producer stage emits for `message` once its records are written: the
    /// records of a `multi` message at consecutive offsets from `offset`.
    public static func result<Key: Sendable, Value: Sendable, PassThrough: Sendable>(
        for message: ProducerMessage<Key, Value, PassThrough>, offset: Int64 = 0
    ) -> ProducerResult<Key, Value, PassThrough> {
        switch message {
        case .single(let record, let passThrough):
            return .single(recordMetadata(record, offset: offset), record, passThrough: passThrough)
        case .multi(let records, let passThrough):
            let parts = records.enumerated().map { index, record in
                ProducedRecord(metadata: recordMetadata(record, offset: offset + Int64(index)), record: record)
            }
            return .multi(parts, passThrough: passThrough)
        case .passThrough(let passThrough):
            return .passThrough(passThrough)
        }
    }

    /// A flow standing in for `Producer.flexiFlow(_:)`: emits each message's result in order,
    /// as if every record were written, numbering offsets per partition from 0 like a new
    /// topic would (each run of the flow starts again from 0).
    public static func flow<Key: Sendable, Value: Sendable, PassThrough: Sendable>(
        _: ProducerMessage<Key, Value, PassThrough>.Type = ProducerMessage<Key, Value, PassThrough>.self
    ) -> FlowOf<ProducerMessage<Key, Value, PassThrough>, ProducerResult<Key, Value, PassThrough>> {
        FlowOf { upstream in
            let offsets = PartitionOffsets()
            return upstream.map { message -> ProducerResult<Key, Value, PassThrough> in
                switch message {
                case .single(let record, let passThrough):
                    return .single(
                        recordMetadata(record, offset: offsets.next(record)), record, passThrough: passThrough)
                case .multi(let records, let passThrough):
                    return .multi(
                        records.map {
                            ProducedRecord(metadata: recordMetadata($0, offset: offsets.next($0)), record: $0)
                        },
                        passThrough: passThrough)
                case .passThrough(let passThrough):
                    return .passThrough(passThrough)
                }
            }
        }
    }
}

/// The next offset of each partition for ``ProducerResultFactory/flow(_:)``.
private final class PartitionOffsets: Sendable {
    private let next = Mutex<[TopicPartition: Int64]>([:])

    func next<Key, Value>(_ record: ProducerRecord<Key, Value>) -> Int64 {
        next.withLock { next in
            let partition = TopicPartition(record.topic, record.partition ?? 0)
            defer { next[partition, default: 0] += 1 }
            return next[partition, default: 0]
        }
    }
}
