import CRdKafka
import Logging
import StreamKit
import Synchronization

/// One Kafka consumer shared by several sources, each reading partitions of
/// its own: Alpakka's `KafkaConsumerActor` with external sources.
///
/// Create it once, then make sources with
/// ``Consumer/plainExternalSource(_:subscription:)`` and
/// ``Consumer/committableExternalSource(_:subscription:)``, each with a manual
/// assignment (``Subscription/assignment(_:)-swift.type.method`` and kin). All sources share one
/// connection, one thread and one `maxBufferedBytes` budget; a source that
/// falls behind has its partitions paused alone. Stopping a source completes
/// it; a source that is shut down lets its partitions go; one whose stream ends
/// lets them go once the offsets it emitted are committed or dropped downstream
/// (`closeTimeout` at the latest, at once when another source asks for them);
/// ``shutdown()`` closes the consumer and completes every source. When
/// the `KafkaConsumer` and every source made from it are gone, the consumer
/// closes by itself.
public final class KafkaConsumer<Key: Sendable, Value: Sendable>: Sendable {
    let settings: ConsumerSettings<Key, Value>
    let control: ConsumerControl
    /// Held by this consumer and by each of its sources: the last to go closes the engine.
    let owner: SharedConsumerOwner
    var engine: ConsumerEngine { owner.engine }
    private let nextSource = Atomic<UInt64>(1)

    /// Starts the consumer. It reads nothing until sources attach partitions.
    /// Commits (``Consumer/committableExternalSource(_:subscription:)``) need a
    /// consumer group (`withGroupId`); the consumer never joins it.
    public init(_ settings: ConsumerSettings<Key, Value>, logger: Logger = Logger(label: "reactive-kafka.consumer"))
        throws(KafkaError)
    {
        self.settings = settings
        let box = EngineReference()
        control = Consumer.makeControl(
            settings, subscription: Subscription(kind: .external), logger: logger,
            kind: Consumer.SourceKind(
                committable: settings.groupId?.isEmpty == false, partitioned: true, endsWithItsSources: false),
            engineBox: box)
        guard let engine = try control.claimEngine() else {
            throw KafkaError(.illegalState, "the shared consumer could not start")
        }
        self.owner = SharedConsumerOwner(engine)
    }

    /// Closes the consumer: every source sharing it completes.
    public func shutdown() async {
        await control.shutdown()
    }

    /// The consumer's metrics (buffer figures and, when enabled, librdkafka statistics).
    public var metrics: ConsumerMetrics { control.metrics }
    /// The shared consumer's health (``ConsumerControl/health``).
    public var health: ConsumerHealth { control.health }
    /// The shared consumer's health and its changes (``ConsumerControl/healthChanges()``).
    public func healthChanges() -> AsyncStream<ConsumerHealth> { control.healthChanges() }

    func makeSourceID() -> UInt64 { nextSource.add(1, ordering: .relaxed).oldValue }
}

extension Consumer {
    /// Records of the partitions `subscription` assigns, read through a shared
    /// `consumer`: Alpakka's `plainExternalSource`. The subscription must be a
    /// manual assignment; partitions already read by another source of the
    /// consumer fail the stream with ``KafkaError/Kind/invalidConfiguration``.
    public static func plainExternalSource<Key, Value>(
        _ consumer: KafkaConsumer<Key, Value>, subscription: Subscription
    ) -> Source<KafkaConsumerSequence<ConsumerRecord<Key, Value>>, ConsumerControl> {
        let settings = consumer.settings
        return externalSource(consumer, subscription: subscription) { index, chunk, _ in
            try RecordReader.record(index, chunk, key: settings.keyDeserializer, value: settings.valueDeserializer)
        }
    }

    /// Committable messages of the partitions `subscription` assigns, read
    /// through a shared `consumer`: Alpakka's `committableExternalSource`.
    /// Commits go to the consumer's group (it needs `withGroupId`).
    public static func committableExternalSource<Key, Value>(
        _ consumer: KafkaConsumer<Key, Value>, subscription: Subscription
    ) -> Source<KafkaConsumerSequence<CommittableMessage<Key, Value>>, ConsumerControl> {
        let settings = consumer.settings
        return externalSource(consumer, subscription: subscription) { index, chunk, engine in
            try committableMessage(index, chunk, key: settings.keyDeserializer, value: settings.valueDeserializer)
        }
    }

    private static func externalSource<Key, Value, Element: Sendable>(
        _ consumer: KafkaConsumer<Key, Value>, subscription: Subscription,
        makeElement: @escaping @Sendable (Int, LentChunk, ConsumerEngine) throws -> Element
    ) -> Source<KafkaConsumerSequence<Element>, ConsumerControl> {
        let id = consumer.makeSourceID()
        let owner = consumer.owner
        let engine = owner.engine
        let control = ConsumerControl(
            stopTimeout: consumer.settings.stopTimeout, health: consumer.control.healthHub, sharedSource: id
        ) { () throws(KafkaError) -> ConsumerEngine in
            // The source keeps the shared consumer open while it exists.
            let engine = owner.engine
            guard !subscription.isGroupSubscription else {
                throw KafkaError(
                    .invalidConfiguration,
                    "a source sharing a consumer needs a manual assignment (Subscription.assignment…), not \(subscription)"
                )
            }
            guard engine.phase == .running else {
                throw KafkaError(.shutDown, "the shared consumer is shut down: create a new KafkaConsumer")
            }
            return engine
        }
        let sequence = KafkaConsumerSequence<Element>(control: control, reader: .subset(id), attaching: subscription) {
            index, chunk in
            try makeElement(index, chunk, engine)
        }
        return Source(sequence, materialized: control)
    }
}

/// Keeps a shared consumer's engine open while its ``KafkaConsumer`` or any of its
/// sources exists; the last of them to go closes it (without waiting).
final class SharedConsumerOwner: Sendable {
    let engine: ConsumerEngine

    init(_ engine: ConsumerEngine) { self.engine = engine }

    deinit { engine.beginShutdown() }
}
