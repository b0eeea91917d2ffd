import CRdKafka
import Logging
import StreamKit

/// Kafka sources: Alpakka's `Consumer` factory.
///
/// Each source owns one consumer (started when the stream first pulls) and
/// materializes a ``ConsumerControl``. Sources emit records in batches taken
/// from the consumer engine; per-partition order is preserved.
public enum Consumer {
    /// A plain source: records without commit handles. Offsets are committed
    /// only if you enable librdkafka's auto-commit (`enable.auto.commit`), which
    /// commits records once read: at-most-once. Use ``committableSource(_:subscription:logger:)``
    /// for at-least-once.
    public static func plainSource<Key, Value>(
        _ settings: ConsumerSettings<Key, Value>,
        subscription: Subscription,
        logger: Logger = Logger(label: "reactive-kafka.consumer")
    ) -> Source<KafkaConsumerSequence<ConsumerRecord<Key, Value>>, ConsumerControl> {
        // Raw bytes take a path compiled for them: generic record construction costs a
        // metadata lookup and indirect copies per record. Same behaviour, same type.
        if let bytes = settings as? ConsumerSettings<KafkaBytes, KafkaBytes>,
           let source = bytesPlainSource(bytes, subscription: subscription, logger: logger) as Any
               as? Source<KafkaConsumerSequence<ConsumerRecord<Key, Value>>, ConsumerControl> {
            return source
        }
        let keys = settings.keyDeserializer
        let values = settings.valueDeserializer
        return makeSource(settings, subscription: subscription, logger: logger, committable: false) { message, chunk, _ in
            try RecordReader.record(message, chunk, key: keys, value: values)
        }
    }

    /// A committable source: each record comes with its ``CommittableOffset``,
    /// to commit once the record is processed (with ``Committer``) for
    /// at-least-once delivery. Needs a consumer group (`withGroupId`);
    /// librdkafka's auto-commit is turned off.
    public static func committableSource<Key, Value>(
        _ settings: ConsumerSettings<Key, Value>,
        subscription: Subscription,
        logger: Logger = Logger(label: "reactive-kafka.consumer")
    ) -> Source<KafkaConsumerSequence<CommittableMessage<Key, Value>>, ConsumerControl> {
        if let bytes = settings as? ConsumerSettings<KafkaBytes, KafkaBytes>,
           let source = bytesCommittableSource(bytes, subscription: subscription, logger: logger) as Any
               as? Source<KafkaConsumerSequence<CommittableMessage<Key, Value>>, ConsumerControl> {
            return source
        }
        let keys = settings.keyDeserializer
        let values = settings.valueDeserializer
        let groupId = settings.groupId ?? ""
        return makeSource(settings, subscription: subscription, logger: logger, committable: true) { message, chunk, engine in
            try committableMessage(message, chunk, key: keys, value: values, groupId: groupId, engine: engine)
        }
    }

    private static func bytesPlainSource(
        _ settings: ConsumerSettings<KafkaBytes, KafkaBytes>, subscription: Subscription, logger: Logger
    ) -> Source<KafkaConsumerSequence<ConsumerRecord<KafkaBytes, KafkaBytes>>, ConsumerControl> {
        let keys = settings.keyDeserializer
        let values = settings.valueDeserializer
        return makeSource(settings, subscription: subscription, logger: logger, committable: false) { message, chunk, _ in
            try RecordReader.record(message, chunk, key: keys, value: values)
        }
    }

    private static func bytesCommittableSource(
        _ settings: ConsumerSettings<KafkaBytes, KafkaBytes>, subscription: Subscription, logger: Logger
    ) -> Source<KafkaConsumerSequence<CommittableMessage<KafkaBytes, KafkaBytes>>, ConsumerControl> {
        let keys = settings.keyDeserializer
        let values = settings.valueDeserializer
        let groupId = settings.groupId ?? ""
        return makeSource(settings, subscription: subscription, logger: logger, committable: true) { message, chunk, engine in
            try committableMessage(message, chunk, key: keys, value: values, groupId: groupId, engine: engine)
        }
    }

    /// One committable message; specialised by its callers (raw bytes or generic).
    @inline(__always)
    private static func committableMessage<Key, Value>(
        _ message: UnsafeMutablePointer<rd_kafka_message_t>, _ chunk: RecordChunk,
        key keys: Deserializer<Key>, value values: Deserializer<Value>, groupId: String, engine: ConsumerEngine
    ) throws -> CommittableMessage<Key, Value> {
        let record = try RecordReader.record(message, chunk, key: keys, value: values)
        let offset = CommittableOffset(
            partitionOffset: PartitionOffset(groupId: groupId, topicPartition: chunk.topicPartition, offset: record.offset),
            committer: engine)
        return CommittableMessage(record: record, committableOffset: offset)
    }

    private static func makeSource<Key, Value, Element: Sendable>(
        _ settings: ConsumerSettings<Key, Value>,
        subscription: Subscription,
        logger: Logger,
        committable: Bool,
        makeElement: @escaping @Sendable (UnsafeMutablePointer<rd_kafka_message_t>, RecordChunk, ConsumerEngine) throws -> Element
    ) -> Source<KafkaConsumerSequence<Element>, ConsumerControl> {
        let engineBox = EngineReference()
        let control = ConsumerControl(stopTimeout: settings.stopTimeout) { () throws(KafkaError) -> ConsumerEngine in
            try settings.validate()
            try subscription.validate()
            guard let groupId = settings.groupId, !groupId.isEmpty else {
                throw KafkaError(.invalidConfiguration, "a subscription needs a consumer group: set one with ConsumerSettings.withGroupId(_:)")
            }
            var properties = settings.properties
            if committable { properties["enable.auto.commit"] = "false" }
            let engine = try ConsumerEngine(
                configuration: .init(
                    properties: properties, topics: subscription.topicNames, groupId: groupId,
                    maxBufferedBytes: settings.maxBufferedBytes, maxBatchSize: settings.maxBatchSize,
                    commitTimeout: settings.commitTimeout, commitTimeWarning: settings.commitTimeWarning,
                    closeTimeout: settings.closeTimeout, brokerUnreachableTimeout: settings.brokerUnreachableTimeout,
                    logger: logger),
                statisticsInterval: settings.statisticsInterval)
            engineBox.engine = engine
            return engine
        }
        let sequence = KafkaConsumerSequence<Element>(control: control) { message, chunk in
            try makeElement(message, chunk, engineBox.engine!)
        }
        return Source(sequence, materialized: control)
    }
}

/// Lets element factories reach the engine created lazily by the control.
/// Written once, before the first element is made, by the same task.
final class EngineReference: @unchecked Sendable {
    var engine: ConsumerEngine?
}
