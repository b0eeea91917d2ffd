import Logging
import StreamKit

/// Event-sourced stateful stages: per key, command → events → new state, the events kept in
/// a changelog topic that the state is recovered from.
public enum EventSourced {
    /// A flow that applies each input record's command (the record's value) to the entity of
    /// its key, and writes the events it causes to the changelog and the records `output`
    /// builds, in Kafka transactions that also commit the input offsets.
    ///
    /// - Recovery: before the first input of a partition (at start and after every assignment
    ///   of it), and after an aborted transaction rewinds the source, the partition's state is
    ///   rebuilt from its snapshots (when a store is set) and its changelog partition, read
    ///   up to its end with `read_committed`. A partition that moves is recovered by its new
    ///   owner the same way, so the state follows its keys. The partitions an assignment gives
    ///   the member are recovered together, by one reader, at the first input of any of them;
    ///   each recovery is timed in ``MessagingMetric/operationDuration`` (`recover_state`).
    /// - Exactly once: events, outputs and input offsets commit together; the state is only
    ///   ever what the committed events make it. A crash at any point loses nothing and
    ///   doubles nothing. Snapshots are written once their events are committed.
    /// - The changelog must keep every event since the stored snapshots (no time-based deletion).
    /// - Emits each input's ``EventSourcedOutcome`` once its transaction is committed.
    /// - Feed it from ``Transactional/source(_:subscription:logger:)`` or
    ///   ``Transactional/partitionedSource(_:subscription:logger:)`` (merged, each partition in order).
    ///
    /// - Parameters:
    ///   - behavior: how entities decide and evolve.
    ///   - settings: the changelog topic, its codecs and the snapshots.
    ///   - consumerSettings: the connection the changelog is read with (its group is not used).
    ///   - producerSettings: the connection and serializers of the transactional producer.
    ///   - transactionalId: unique per running instance; a restarted instance must reuse it.
    ///   - logger: where the transactional stage logs aborts.
    ///   - output: the records to write for an input besides its events (replies, notifications).
    /// - Throws: ``EventSourcedError/Kind/invalidSettings`` for settings that cannot work.
    public static func flow<
        Key: Hashable & Sendable, Command: Sendable, State: Sendable, Event: Sendable, Rejection: Error,
        InKey, InValue, OutKey: Sendable, OutValue: Sendable
    >(
        _ behavior: EventSourcedBehavior<State, Command, Event, Rejection>,
        settings: EventSourcedSettings<Key, State, Event>,
        consumerSettings: ConsumerSettings<InKey, InValue>,
        producerSettings: ProducerSettings<OutKey, OutValue>,
        transactionalId: String,
        logger: Logger = Logger(label: "reactive-kafka.event-sourced"),
        output:
            @escaping @Sendable (Command, EventSourcedOutcome<Key, State, Event, Rejection>) throws -> [ProducerRecord<
                OutKey, OutValue
            >] = { _, _ in [] }
    ) throws(EventSourcedError) -> FlowOf<
        TransactionalMessage<Key, Command>, EventSourcedOutcome<Key, State, Event, Rejection>
    > {
        try settings.validate()
        var bytes = ProducerSettings<SerializedBytes, SerializedBytes>(
            keySerializer: Serializer { $0 }, valueSerializer: Serializer { $0 },
            properties: producerSettings.properties)
        bytes.closeTimeout = producerSettings.closeTimeout
        bytes.parallelism = producerSettings.parallelism
        bytes.eosCommitInterval = producerSettings.eosCommitInterval
        bytes.metrics = producerSettings.metrics
        let transactional = Transactional.flow(bytes, transactionalId: transactionalId, logger: logger)
        let reader = ChangelogReader(consumerSettings, topic: settings.changelogTopic, logger: logger)
        return FlowOf { upstream in
            let core = EventSourcedCore(
                behavior: behavior, settings: settings, producer: producerSettings, reader: reader,
                metrics: consumerSettings.metrics, logger: logger, output: output)
            let messages = upstream.map { @Sendable message in try await core.handle(message) }
            return transactional.apply(messages).compactMap { @Sendable result in try await core.committed(result) }
        }
    }
}
