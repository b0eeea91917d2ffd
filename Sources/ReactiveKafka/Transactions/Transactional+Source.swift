import CRdKafka
import Logging
import StreamKit

extension Transactional {
    /// A source for exactly-once pipelines: Alpakka's `Transactional.source`. Each
    /// record comes with the ``TransactionalOffset`` that
    /// ``sink(_:transactionalId:eosCommitInterval:logger:)`` commits in its transaction.
    ///
    /// - Reads with `isolation.level=read_committed` (forced): records of aborted or
    ///   open transactions upstream are not emitted.
    /// - Offsets are committed only by the transactional sink, never by the consumer.
    /// - After an aborted transaction the sink rewinds this source: every partition of
    ///   the transaction is read again from its last committed offset, and records of
    ///   them fetched before are dropped. Keep each partition's order between source and sink.
    /// - On a revoke the rebalance waits (at most `settings.rebalanceSafeCommitTimeout`,
    ///   15 s by default) until the records already emitted for the revoked partitions are
    ///   committed in a transaction; records of them still buffered are dropped.
    /// - Needs a consumer group (`withGroupId`). The consumer's group metadata (generation,
    ///   member id) goes with the offsets, so the broker fences a zombie (KIP-447).
    /// - `drainAndShutdown` stops the source; the sink commits its open transaction (producing
    ///   its messages again if a rebalance replaced the generation its offsets carried), then
    ///   the consumer closes.
    public static func source<Key, Value>(
        _ settings: ConsumerSettings<Key, Value>,
        subscription: Subscription,
        logger: Logger = Logger(label: "reactive-kafka.consumer")
    ) -> Source<KafkaConsumerSequence<TransactionalMessage<Key, Value>>, ConsumerControl> {
        if let source: Source<KafkaConsumerSequence<TransactionalMessage<Key, Value>>, ConsumerControl> =
            Consumer.forRawBytes(
                settings, { bytesSource($0, subscription: subscription, logger: logger) })
        {
            return source
        }
        return makeSource(settings, subscription: subscription, logger: logger)
    }

    private static func bytesSource(
        _ settings: ConsumerSettings<KafkaBytes, KafkaBytes>, subscription: Subscription, logger: Logger
    ) -> Source<KafkaConsumerSequence<TransactionalMessage<KafkaBytes, KafkaBytes>>, ConsumerControl> {
        makeSource(settings, subscription: subscription, logger: logger)
    }

    @inline(__always)
    private static func makeSource<Key, Value>(
        _ settings: ConsumerSettings<Key, Value>, subscription: Subscription, logger: Logger
    ) -> Source<KafkaConsumerSequence<TransactionalMessage<Key, Value>>, ConsumerControl> {
        let keys = settings.keyDeserializer
        let values = settings.valueDeserializer
        let (consumerSettings, transactionalSubscription, context) = prepare(settings, subscription)
        return Consumer.makeSource(
            consumerSettings, subscription: transactionalSubscription, logger: logger, committable: true,
            transactional: true
        ) { index, chunk, engine in
            try transactionalMessage(index, chunk, key: keys, value: values, context: context, engine: engine)
        }
    }

    /// ``source(_:subscription:logger:)`` with each record and its offset apart: Alpakka's
    /// `sourceWithOffsetContext`. Transform the record and keep the offset as it is, then
    /// write with ``sinkWithOffsetContext(_:transactionalId:eosCommitInterval:logger:)``.
    public static func sourceWithOffsetContext<Key, Value>(
        _ settings: ConsumerSettings<Key, Value>,
        subscription: Subscription,
        logger: Logger = Logger(label: "reactive-kafka.consumer")
    ) -> Source<KafkaConsumerSequence<RecordWithOffset<Key, Value, TransactionalOffset>>, ConsumerControl> {
        let keys = settings.keyDeserializer
        let values = settings.valueDeserializer
        let (consumerSettings, transactionalSubscription, context) = prepare(settings, subscription)
        return Consumer.makeSource(
            consumerSettings, subscription: transactionalSubscription, logger: logger, committable: true,
            transactional: true
        ) { index, chunk, engine in
            let message = try transactionalMessage(
                index, chunk, key: keys, value: values, context: context, engine: engine)
            return RecordWithOffset(record: message.record, offset: message.partitionOffset)
        }
    }

    /// A transactional source with one sub-stream per assigned partition (Alpakka has it
    /// internally; here it is public). Each sub-stream completes when its partition is
    /// revoked; merge them into one ``sink(_:transactionalId:eosCommitInterval:logger:)``
    /// (one transactional producer per consumer, KIP-447) keeping each partition's order.
    /// Everything of ``source(_:subscription:logger:)`` holds. After an aborted transaction a
    /// partition is read again from its last committed offset in the same sub-stream; the
    /// records of it fetched before the rewind still come through the sub-stream and are
    /// dropped by the sink.
    public static func partitionedSource<Key, Value>(
        _ settings: ConsumerSettings<Key, Value>,
        subscription: Subscription,
        logger: Logger = Logger(label: "reactive-kafka.consumer")
    ) -> Source<KafkaPartitionedSequence<TransactionalMessage<Key, Value>>, ConsumerControl> {
        let keys = settings.keyDeserializer
        let values = settings.valueDeserializer
        let (consumerSettings, transactionalSubscription, context) = prepare(
            settings, subscription, dropsFetchedOnRewind: false)
        return Consumer.partitioned(
            consumerSettings, subscription: transactionalSubscription, logger: logger, committable: true,
            transactional: true, offsetsOnAssign: nil
        ) { index, chunk, engine in
            try transactionalMessage(index, chunk, key: keys, value: values, context: context, engine: engine)
        }
    }

    /// One transactional message; specialised by its callers (raw bytes or generic).
    @inline(__always)
    static func transactionalMessage<Key, Value>(
        _ index: Int, _ chunk: LentChunk,
        key keys: Deserializer<Key>, value values: Deserializer<Value>, context: TransactionalSourceContext,
        engine: EngineReference
    ) throws -> TransactionalMessage<Key, Value> {
        let record = try RecordReader.record(index, chunk, key: keys, value: values)
        let offset = TransactionalOffset(
            partition: try context.emit(chunk.partition, record.offset, engine: engine), offset: record.offset)
        return TransactionalMessage(record: record, partitionOffset: offset)
    }

    /// The settings, subscription and context of a transactional source.
    static func prepare<Key, Value>(
        _ settings: ConsumerSettings<Key, Value>, _ subscription: Subscription, dropsFetchedOnRewind: Bool = true
    ) -> (ConsumerSettings<Key, Value>, Subscription, TransactionalSourceContext) {
        let context = TransactionalSourceContext(
            groupId: settings.groupId ?? "",
            drainTimeout: settings.rebalanceSafeCommitTimeout ?? .zero,
            userHandler: subscription.partitionAssignmentHandler,
            dropsFetchedOnRewind: dropsFetchedOnRewind)
        // The engine's own rebalance-safe commits wait for consumer commits, which a
        // transactional stream never makes: the context drains through the sink instead.
        let consumerSettings =
            settings
            .withProperty("isolation.level", "read_committed")
            .withRebalanceSafeCommitTimeout(nil)
        // The engine holds its handler for its whole life: through a forwarder that holds the
        // context weakly, since the context holds the engine (see TransactionalRebalanceForwarder).
        let transactionalSubscription =
            subscription.isGroupSubscription
            ? subscription.withPartitionAssignmentHandler(TransactionalRebalanceForwarder(context)) : subscription
        return (consumerSettings, transactionalSubscription, context)
    }
}
