import StreamKit

/// Stages that write to Kafka: Alpakka's `Producer` factory.
public enum Producer {
    /// A flow that produces each message's records and emits a
    /// ``ProducerResult`` per message, in input order, once all its records are
    /// acknowledged. The flow creates its own producer and closes it (flushing)
    /// when the stream completes or fails.
    ///
    /// Back-pressure: at most `settings.parallelism` messages are in flight
    /// (sent, not yet acknowledged), and at most 2 × `parallelism` are pulled
    /// and not yet taken by downstream (acknowledged results wait behind an
    /// earlier message to keep input order); upstream is not pulled beyond
    /// that, and a full librdkafka queue suspends producing. A failed delivery
    /// fails the stream with ``KafkaError/Kind/deliveryFailed`` after the
    /// results before it; a throwing serialiser with ``KafkaError/Kind/serialization``.
    /// Cancelling downstream stops pulling upstream.
    ///
    /// Records are handed to librdkafka in batches: a batch goes out when 1,024 records are
    /// collected, before a record that cannot join it (headers, own timestamp, another topic),
    /// when capacity is used up, and when upstream has had nothing for a millisecond
    /// (librdkafka itself then waits up to `linger.ms`, 5 ms by default, before sending).
    @inlinable
    public static func flexiFlow<Key, Value, PassThrough>(
        _ settings: ProducerSettings<Key, Value>
    ) -> ProducerFlexiFlow<Key, Value, PassThrough> {
        ProducerFlexiFlow(settings: settings, producer: nil)
    }

    /// Like ``flexiFlow(_:)``, producing through a shared `producer` (which the
    /// flow does not close). The flow uses the serialisers and `parallelism` of `settings`.
    @inlinable
    public static func flexiFlow<Key, Value, PassThrough>(
        _ settings: ProducerSettings<Key, Value>, producer: KafkaProducer<Key, Value>
    ) -> ProducerFlexiFlow<Key, Value, PassThrough> {
        ProducerFlexiFlow(settings: settings, producer: producer)
    }

    /// A sink that writes every record and completes once all of them are
    /// acknowledged (failing on the first failed delivery). It creates its own
    /// producer and closes it at the end. Back-pressure as ``flexiFlow(_:)``.
    @inlinable
    public static func plainSink<Key, Value>(_ settings: ProducerSettings<Key, Value>) -> ProducerPlainSink<Key, Value> {
        ProducerPlainSink(flow: flexiFlow(settings))
    }

    /// Like ``plainSink(_:)``, producing through a shared `producer` (which the sink does not close).
    @inlinable
    public static func plainSink<Key, Value>(
        _ settings: ProducerSettings<Key, Value>, producer: KafkaProducer<Key, Value>
    ) -> ProducerPlainSink<Key, Value> {
        ProducerPlainSink(flow: flexiFlow(settings, producer: producer))
    }
}

/// The sink of ``Producer/plainSink(_:)``.
public struct ProducerPlainSink<Key: Sendable, Value: Sendable>: Sink {
    public typealias Input = ProducerRecord<Key, Value>
    public typealias Result = Void

    @usableFromInline let flow: ProducerFlexiFlow<Key, Value, Void>

    @inlinable
    init(flow: ProducerFlexiFlow<Key, Value, Void>) { self.flow = flow }

    /// Writes every record of `upstream`; returns when all are acknowledged.
    public func run<Upstream: AsyncSequence & Sendable>(_ upstream: Upstream) async throws
    where Upstream.Element == ProducerRecord<Key, Value> {
        let messages = upstream.map { @Sendable record in ProducerMessage<Key, Value, Void>.single(record, passThrough: ()) }
        for try await _ in flow.apply(messages) {}
    }
}
