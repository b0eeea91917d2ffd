import CRdKafka
import Logging
import StreamKit

extension Consumer {
    /// A committable source whose commits carry a metadata string per record
    /// (stored with the offset on the broker): Alpakka's `commitWithMetadataSource`.
    public static func commitWithMetadataSource<Key, Value>(
        _ settings: ConsumerSettings<Key, Value>,
        subscription: Subscription,
        metadataFromRecord: @escaping @Sendable (ConsumerRecord<Key, Value>) -> String,
        logger: Logger = Logger(label: "reactive-kafka.consumer")
    ) -> Source<KafkaConsumerSequence<CommittableMessage<Key, Value>>, ConsumerControl> {
        let keys = settings.keyDeserializer
        let values = settings.valueDeserializer
        return makeSource(settings, subscription: subscription, logger: logger, committable: true) {
            index, chunk, engine in
            try committableMessage(index, chunk, key: keys, value: values, metadata: metadataFromRecord)
        }
    }

    /// Records paired with their committable offset as a context that travels
    /// beside the record through the stream: Alpakka's `sourceWithOffsetContext`.
    /// Map the record and keep the context, then commit the contexts with ``Committer``.
    public static func sourceWithOffsetContext<Key, Value>(
        _ settings: ConsumerSettings<Key, Value>,
        subscription: Subscription,
        logger: Logger = Logger(label: "reactive-kafka.consumer")
    ) -> Source<KafkaConsumerSequence<RecordWithOffset<Key, Value, CommittableOffset>>, ConsumerControl> {
        let keys = settings.keyDeserializer
        let values = settings.valueDeserializer
        return makeSource(settings, subscription: subscription, logger: logger, committable: true) {
            index, chunk, engine in
            let message = try committableMessage(index, chunk, key: keys, value: values)
            return RecordWithOffset(record: message.record, offset: message.committableOffset)
        }
    }

    /// At-most-once: each record's offset is committed, and acknowledged by
    /// the broker, before the record is emitted: Alpakka's `atMostOnceSource`.
    /// A crash loses at most the record being processed; it is never read
    /// twice. A record whose partition was revoked before its commit landed is
    /// not emitted (its next owner reads it), so no record is emitted by two
    /// members. Any other commit failure fails the stream. One commit round
    /// trip per record: slow by nature.
    public static func atMostOnceSource<Key, Value>(
        _ settings: ConsumerSettings<Key, Value>,
        subscription: Subscription,
        logger: Logger = Logger(label: "reactive-kafka.consumer")
    ) -> Source<some AsyncSequence<ConsumerRecord<Key, Value>, any Error> & Sendable, ConsumerControl> {
        committableSource(settings, subscription: subscription, logger: logger).compactMap {
            message async throws -> ConsumerRecord<Key, Value>? in
            do {
                try await message.committableOffset.commit()
            } catch let error as KafkaError where error.kind == .notAssigned {
                return nil
            }
            // Revoked while its commit was on its way, then assigned back (an eager rebalance assigns
            // anew): the new assignment may have read from the commit before this one and emit the
            // record again. Dropping this copy at most loses the record, which at-most-once allows.
            if message.committableOffset.partitionMovedSinceRead { return nil }
            return message.record
        }
    }
}
