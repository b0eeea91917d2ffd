import CRdKafka
import Logging
import StreamKit

extension Consumer {
    /// One sub-stream of records per assigned partition: Alpakka's
    /// `plainPartitionedSource`. See ``KafkaPartitionedSequence`` for when
    /// sub-streams start and complete, and their back-pressure.
    public static func plainPartitionedSource<Key, Value>(
        _ settings: ConsumerSettings<Key, Value>,
        subscription: Subscription,
        logger: Logger = Logger(label: "reactive-kafka.consumer")
    ) -> Source<KafkaPartitionedSequence<ConsumerRecord<Key, Value>>, ConsumerControl> {
        partitioned(settings, subscription: subscription, logger: logger, committable: false, offsetsOnAssign: nil) {
            index, chunk, _ in
            try RecordReader.record(index, chunk, key: settings.keyDeserializer, value: settings.valueDeserializer)
        }
    }

    /// One sub-stream of committable messages per assigned partition:
    /// Alpakka's `committablePartitionedSource`. Commit with ``Committer``
    /// (one committer for all sub-streams, or one each).
    public static func committablePartitionedSource<Key, Value>(
        _ settings: ConsumerSettings<Key, Value>,
        subscription: Subscription,
        logger: Logger = Logger(label: "reactive-kafka.consumer")
    ) -> Source<KafkaPartitionedSequence<CommittableMessage<Key, Value>>, ConsumerControl> {
        return partitioned(
            settings, subscription: subscription, logger: logger, committable: true, offsetsOnAssign: nil
        ) { index, chunk, engine in
            try committableMessage(index, chunk, key: settings.keyDeserializer, value: settings.valueDeserializer)
        }
    }

    /// A partitioned source whose offsets the application keeps (for example
    /// in a database, written with its results): Alpakka's
    /// `plainPartitionedManualOffsetSource`. When partitions are assigned,
    /// `getOffsetsOnAssign` is awaited and each partition it returns an
    /// offset for is read from that offset (its sub-stream's first record);
    /// others start from the group's committed offset. A partition a rebalance takes
    /// away while `getOffsetsOnAssign` runs is left to its next owner. `onRevoke` runs on
    /// the consumer's thread before partitions move (keep it short).
    public static func plainPartitionedManualOffsetSource<Key, Value>(
        _ settings: ConsumerSettings<Key, Value>,
        subscription: Subscription,
        getOffsetsOnAssign: @escaping @Sendable (Set<TopicPartition>) async throws -> [TopicPartition: Int64],
        onRevoke: @escaping @Sendable (Set<TopicPartition>) -> Void = { _ in },
        logger: Logger = Logger(label: "reactive-kafka.consumer")
    ) -> Source<KafkaPartitionedSequence<ConsumerRecord<Key, Value>>, ConsumerControl> {
        partitioned(
            settings, subscription: subscription.withRevokeCallback(onRevoke), logger: logger, committable: false,
            offsetsOnAssign: getOffsetsOnAssign
        ) { index, chunk, _ in
            try RecordReader.record(index, chunk, key: settings.keyDeserializer, value: settings.valueDeserializer)
        }
    }

    /// ``plainPartitionedManualOffsetSource(_:subscription:getOffsetsOnAssign:onRevoke:logger:)``
    /// with committable messages: Alpakka's `committablePartitionedManualOffsetSource`.
    public static func committablePartitionedManualOffsetSource<Key, Value>(
        _ settings: ConsumerSettings<Key, Value>,
        subscription: Subscription,
        getOffsetsOnAssign: @escaping @Sendable (Set<TopicPartition>) async throws -> [TopicPartition: Int64],
        onRevoke: @escaping @Sendable (Set<TopicPartition>) -> Void = { _ in },
        logger: Logger = Logger(label: "reactive-kafka.consumer")
    ) -> Source<KafkaPartitionedSequence<CommittableMessage<Key, Value>>, ConsumerControl> {
        return partitioned(
            settings, subscription: subscription.withRevokeCallback(onRevoke), logger: logger, committable: true,
            offsetsOnAssign: getOffsetsOnAssign
        ) { index, chunk, engine in
            try committableMessage(index, chunk, key: settings.keyDeserializer, value: settings.valueDeserializer)
        }
    }

    static func partitioned<Key, Value, Element: Sendable>(
        _ settings: ConsumerSettings<Key, Value>,
        subscription: Subscription,
        logger: Logger,
        committable: Bool,
        transactional: Bool = false,
        offsetsOnAssign: (@Sendable (Set<TopicPartition>) async throws -> [TopicPartition: Int64])?,
        onPartitionEnd: (@Sendable (TopicPartition, Int64, Int64?) -> Void)? = nil,
        makeElement: @escaping @Sendable (Int, LentChunk, EngineReference) throws -> Element
    ) -> Source<KafkaPartitionedSequence<Element>, ConsumerControl> {
        let engineBox = EngineReference()
        let kind = SourceKind(
            committable: committable, partitioned: true, transactional: transactional, onPartitionEnd: onPartitionEnd,
            seeksOnAssign: offsetsOnAssign != nil)
        let control = makeControl(
            settings, subscription: subscription, logger: logger, kind: kind, engineBox: engineBox)
        let sequence = KafkaPartitionedSequence<Element>(
            control: control,
            makeElement: { index, chunk in try makeElement(index, chunk, engineBox) },
            offsetsOnAssign: offsetsOnAssign)
        return Source(sequence, materialized: control)
    }
}

extension Subscription {
    /// This subscription, with `onRevoke` called before revoked partitions move (after any handler's `onRevoke`).
    func withRevokeCallback(_ onRevoke: @escaping @Sendable (Set<TopicPartition>) -> Void) -> Subscription {
        withPartitionAssignmentHandler(RevokeCallbackHandler(inner: partitionAssignmentHandler, onRevoke: onRevoke))
    }
}

/// A handler that calls another handler, then a revoke callback.
private struct RevokeCallbackHandler: PartitionAssignmentHandler {
    let inner: (any PartitionAssignmentHandler)?
    let onRevoke: @Sendable (Set<TopicPartition>) -> Void

    func onAssign(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {
        inner?.onAssign(partitions, consumer: consumer)
    }
    func onRevoke(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {
        inner?.onRevoke(partitions, consumer: consumer)
        onRevoke(partitions)
    }
    func onLost(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {
        inner?.onLost(partitions, consumer: consumer)
        onRevoke(partitions)
    }
    func onStop(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {
        inner?.onStop(partitions, consumer: consumer)
    }
}
