import CRdKafka
import Foundation
import Logging
import StreamKit

/// Kafka sources: Alpakka's `Consumer` factory.
///
/// Each source owns one consumer (started when the stream first pulls) and
/// materializes a ``ConsumerControl``. Sources emit records in batches taken
/// from the consumer engine; per-partition order is preserved.
public enum Consumer {
    /// A plain source: records without commit handles.
    ///
    /// With a consumer group, librdkafka's auto-commit (`enable.auto.commit`, on
    /// unless you set it to `false`) commits every `auto.commit.interval.ms` the
    /// offsets of records the stream has *emitted* (whole batches; never records
    /// merely fetched or buffered), and on close or a revoke. A crash redelivers
    /// the records emitted since the last auto-commit; the records of the batch
    /// in hand when a stream is cancelled are redelivered too. Use
    /// ``committableSource(_:subscription:logger:)`` to commit after processing.
    public static func plainSource<Key, Value>(
        _ settings: ConsumerSettings<Key, Value>,
        subscription: Subscription,
        logger: Logger = Logger(label: "reactive-kafka.consumer")
    ) -> Source<KafkaConsumerSequence<ConsumerRecord<Key, Value>>, ConsumerControl> {
        if let source: Source<KafkaConsumerSequence<ConsumerRecord<Key, Value>>, ConsumerControl> = forRawBytes(
            settings, { bytesPlainSource($0, subscription: subscription, logger: logger) })
        {
            return source
        }
        return makePlainSource(settings, subscription: subscription, logger: logger)
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
        if let source: Source<KafkaConsumerSequence<CommittableMessage<Key, Value>>, ConsumerControl> = forRawBytes(
            settings, { bytesCommittableSource($0, subscription: subscription, logger: logger) })
        {
            return source
        }
        return makeCommittableSource(settings, subscription: subscription, logger: logger)
    }

    /// What `make` builds from `settings` when they are for raw bytes (nil otherwise), as the
    /// type the caller returns. Each source passes a function of its own for raw bytes, so that
    /// its records are built by code compiled for them: generic record construction costs a
    /// metadata look-up and indirect copies per record. Same behaviour, same type.
    static func forRawBytes<Key, Value, Built>(
        _ settings: ConsumerSettings<Key, Value>, _ make: (ConsumerSettings<KafkaBytes, KafkaBytes>) -> Any
    ) -> Built? {
        guard let raw = settings as? ConsumerSettings<KafkaBytes, KafkaBytes> else { return nil }
        return make(raw) as? Built
    }

    private static func bytesPlainSource(
        _ settings: ConsumerSettings<KafkaBytes, KafkaBytes>, subscription: Subscription, logger: Logger
    ) -> Source<KafkaConsumerSequence<ConsumerRecord<KafkaBytes, KafkaBytes>>, ConsumerControl> {
        makePlainSource(settings, subscription: subscription, logger: logger)
    }

    @inline(__always)
    private static func makePlainSource<Key, Value>(
        _ settings: ConsumerSettings<Key, Value>, subscription: Subscription, logger: Logger
    ) -> Source<KafkaConsumerSequence<ConsumerRecord<Key, Value>>, ConsumerControl> {
        let keys = settings.keyDeserializer
        let values = settings.valueDeserializer
        return makeSource(settings, subscription: subscription, logger: logger, committable: false) { index, chunk, _ in
            try RecordReader.record(index, chunk, key: keys, value: values)
        }
    }

    private static func bytesCommittableSource(
        _ settings: ConsumerSettings<KafkaBytes, KafkaBytes>, subscription: Subscription, logger: Logger
    ) -> Source<KafkaConsumerSequence<CommittableMessage<KafkaBytes, KafkaBytes>>, ConsumerControl> {
        makeCommittableSource(settings, subscription: subscription, logger: logger)
    }

    @inline(__always)
    private static func makeCommittableSource<Key, Value>(
        _ settings: ConsumerSettings<Key, Value>, subscription: Subscription, logger: Logger
    ) -> Source<KafkaConsumerSequence<CommittableMessage<Key, Value>>, ConsumerControl> {
        let keys = settings.keyDeserializer
        let values = settings.valueDeserializer
        return makeSource(settings, subscription: subscription, logger: logger, committable: true) { index, chunk, _ in
            try committableMessage(index, chunk, key: keys, value: values)
        }
    }

    /// One committable message; specialised by its callers (raw bytes or generic).
    @inline(__always)
    static func committableMessage<Key, Value>(
        _ index: Int, _ chunk: LentChunk,
        key keys: Deserializer<Key>, value values: Deserializer<Value>,
        metadata: ((ConsumerRecord<Key, Value>) -> String)? = nil
    ) throws -> CommittableMessage<Key, Value> {
        let record = try RecordReader.record(index, chunk, key: keys, value: values)
        // The chunk's partition carries the group and the committing consumer (this engine).
        let offset = CommittableOffset(partition: chunk.partition, offset: record.offset, metadata: metadata?(record))
        return CommittableMessage(record: record, committableOffset: offset)
    }

    /// What kind of source an engine is started for.
    struct SourceKind {
        /// The stream commits offsets itself (librdkafka's auto-commit is off).
        var committable: Bool
        /// Records are read per partition (sub-streams).
        var partitioned: Bool = false
        /// The end of the source's streams ends the consumer (false: an owner ends it).
        var endsWithItsSources: Bool = true
        /// Offsets are committed in producer transactions, not by committers.
        var transactional: Bool = false
        /// Told when a partition reaches its end (see ``ConsumerEngine/Configuration/onPartitionEnd``).
        var onPartitionEnd: (@Sendable (TopicPartition, Int64, Int64?) -> Void)? = nil
        /// Newly assigned partitions are sought to offsets the application keeps.
        var seeksOnAssign: Bool = false
    }

    static func makeSource<Key, Value, Element: Sendable>(
        _ settings: ConsumerSettings<Key, Value>,
        subscription: Subscription,
        logger: Logger,
        committable: Bool,
        transactional: Bool = false,
        onPartitionEnd: (@Sendable (TopicPartition, Int64, Int64?) -> Void)? = nil,
        makeElement: @escaping @Sendable (Int, LentChunk, EngineReference) throws -> Element
    ) -> Source<KafkaConsumerSequence<Element>, ConsumerControl> {
        let engineBox = EngineReference()
        let kind = SourceKind(committable: committable, transactional: transactional, onPartitionEnd: onPartitionEnd)
        let control = makeControl(
            settings, subscription: subscription, logger: logger, kind: kind, engineBox: engineBox)
        // The box, not its engine: the closure's context keeps the box, so passing it costs
        // nothing per record, where reading the engine out retained and released it per record.
        let sequence = KafkaConsumerSequence<Element>(control: control) { index, chunk in
            try makeElement(index, chunk, engineBox)
        }
        return Source(sequence, materialized: control)
    }

    /// The control that starts the source's consumer engine on first pull.
    static func makeControl<Key, Value>(
        _ settings: ConsumerSettings<Key, Value>, subscription: Subscription, logger: Logger, kind: SourceKind,
        engineBox: EngineReference
    ) -> ConsumerControl {
        let events = RebalanceEventHub()
        let health = ConsumerHealthHub()
        return ConsumerControl(stopTimeout: settings.stopTimeout, events: events, health: health) {
            () throws(KafkaError) -> ConsumerEngine in
            try settings.validate()
            try subscription.validate()
            let groupId = settings.groupId.flatMap { $0.isEmpty ? nil : $0 }
            if subscription.isGroupSubscription && groupId == nil {
                throw KafkaError(
                    .invalidConfiguration,
                    "a subscription needs a consumer group: set one with ConsumerSettings.withGroupId(_:)")
            }
            if kind.committable && groupId == nil {
                throw KafkaError(
                    .invalidConfiguration,
                    "a committable source commits to a consumer group: set one with ConsumerSettings.withGroupId(_:), or use a plain source"
                )
            }
            var properties = settings.properties
            if kind.committable { properties["enable.auto.commit"] = "false" }
            if kind.seeksOnAssign || (subscription.partitionAssignmentHandler != nil && !kind.transactional) {
                // A seek of a partition assigned a moment ago waits for its fetcher's first event
                // (ConsumerEngine+Seeking): the end-of-partition event is the one that comes when
                // the partition has no record to fetch. Not for transactional sources: every one has
                // a handler of its own (the offset context's), which never seeks, and a seek in the
                // application's handler there (rare) waits for the partition's next record instead.
                properties["enable.partition.eof"] = "true"
            }
            if groupId == nil {
                // Without a group nothing can be committed; librdkafka would log a failed auto-commit every interval.
                properties["enable.auto.commit"] = "false"
                // librdkafka assigns partitions only through a consumer-group handle; a manual assignment
                // never joins the group, so a private name that nothing commits to serves.
                properties["group.id"] = "reactive-kafka-assignment-\(UUID().uuidString)"
            }
            var configuration = ConsumerEngine.Configuration(
                properties: properties, subscription: subscription, groupId: groupId,
                maxBufferedBytes: settings.maxBufferedBytes, maxBatchSize: settings.maxBatchSize,
                commitTimeout: settings.commitTimeout, commitTimeWarning: settings.commitTimeWarning,
                closeTimeout: settings.closeTimeout, brokerUnreachableTimeout: settings.brokerUnreachableTimeout,
                rebalanceSafeCommitTimeout: kind.committable && subscription.isGroupSubscription
                    ? settings.rebalanceSafeCommitTimeout : nil,
                partitionHandlerWarning: settings.partitionHandlerWarning,
                events: events, logger: logger)
            configuration.partitioned = kind.partitioned
            configuration.endsWithItsSources = kind.endsWithItsSources
            // Emitted offsets may still be committed downstream when the stream ends (a take(n) ahead
            // of a producer flow and its committer): its consumer waits for them, bounded.
            configuration.countsEmittedOffsets = kind.committable && !kind.transactional && kind.endsWithItsSources
            configuration.stampsHandedOutChunks = kind.committable && !kind.transactional
            // A plain source in a group with librdkafka's auto-commit (on unless turned off):
            // commit only what the stream emitted, never what was merely fetched.
            configuration.storesEmittedOffsets =
                !kind.committable && groupId != nil && properties["enable.auto.commit"] != "false"
            configuration.offsetResetProtection = groupId == nil ? nil : settings.offsetResetProtection
            configuration.metrics = settings.metrics
            configuration.health = health
            configuration.stallThreshold = settings.stallThreshold
            configuration.onPartitionEnd = kind.onPartitionEnd
            let engine = try ConsumerEngine(
                configuration: configuration, statisticsInterval: settings.statisticsInterval)
            engineBox.engine = engine
            return engine
        }
    }
}

/// Lets element factories reach the engine created lazily by the control.
/// Written once, before the first element is made, by the same task.
final class EngineReference: @unchecked Sendable {
    /// Set once, when the source's consumer starts (before any record is read).
    var engine: ConsumerEngine?
}
