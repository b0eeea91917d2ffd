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
    ///
    /// Tracing: records get the trace context of the task that runs the stream, unless they
    /// carry one of their own (see ``ProducerSettings/propagatesTraceContext``); a record with
    /// trace headers is produced on its own, not in a batch.
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
    public static func plainSink<Key, Value>(_ settings: ProducerSettings<Key, Value>) -> ProducerPlainSink<Key, Value>
    {
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

extension Producer {
    /// A sink that produces each message's records and then commits its offset: Alpakka's
    /// `Producer.committableSink`, the at-least-once end of a consume → transform → produce
    /// stream. The same as `.via(flexiFlow(settings)).map { $0.passThrough }.to(Committer.sink(committerSettings))`,
    /// with each offset moved out of its result instead of read from it (a read copies the whole
    /// result first: its record and metadata references, retained and released per message).
    ///
    /// An offset is committed only after every record of its message is acknowledged, so a
    /// failure or a restart repeats records and never skips one. Back-pressure, batching and
    /// failure handling are ``flexiFlow(_:)``'s and ``Committer/sink(_:)``'s: when the stream
    /// completes or fails, the offsets of acknowledged messages are committed first.
    @inlinable
    public static func committableSink<Key, Value>(
        _ settings: ProducerSettings<Key, Value>, committerSettings: CommitterSettings
    ) -> ProducerCommittableSink<Key, Value> {
        ProducerCommittableSink(flow: flexiFlow(settings), committerSettings: committerSettings)
    }

    /// Like ``committableSink(_:committerSettings:)``, producing through a shared `producer`
    /// (which the sink does not close).
    @inlinable
    public static func committableSink<Key, Value>(
        _ settings: ProducerSettings<Key, Value>, producer: KafkaProducer<Key, Value>,
        committerSettings: CommitterSettings
    ) -> ProducerCommittableSink<Key, Value> {
        ProducerCommittableSink(flow: flexiFlow(settings, producer: producer), committerSettings: committerSettings)
    }
}

/// The sink of ``Producer/committableSink(_:committerSettings:)``.
public struct ProducerCommittableSink<Key: Sendable, Value: Sendable>: Sink {
    public typealias Input = ProducerMessage<Key, Value, CommittableOffset>
    public typealias Result = Void

    @usableFromInline let flow: ProducerFlexiFlow<Key, Value, CommittableOffset>
    @usableFromInline let committerSettings: CommitterSettings

    @inlinable
    init(flow: ProducerFlexiFlow<Key, Value, CommittableOffset>, committerSettings: CommitterSettings) {
        self.flow = flow
        self.committerSettings = committerSettings
    }

    /// Produces every message of `upstream` and commits its offset once its records are
    /// acknowledged; returns when the last offset is committed.
    @inlinable
    public func run<Upstream: AsyncSequence & Sendable>(_ upstream: Upstream) async throws
    where Upstream.Element == ProducerMessage<Key, Value, CommittableOffset> {
        try await CommitterLoop.run(committerSettings, ProducerPassThroughs(results: flow.apply(upstream))) { _ in }
    }
}

/// The pass-through values of a producer flow's results, each moved out of its result.
///
/// Back-pressure and cancellation are the results' own: one result is pulled per element.
@usableFromInline
struct ProducerPassThroughs<Key: Sendable, Value: Sendable, PassThrough: Sendable>: AsyncSequence, Sendable {
    @usableFromInline let results: AnyAsyncSequence<ProducerResult<Key, Value, PassThrough>>

    @inlinable
    init(results: AnyAsyncSequence<ProducerResult<Key, Value, PassThrough>>) { self.results = results }

    @inlinable
    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: results.makeAsyncIterator()) }

    @usableFromInline
    struct AsyncIterator: AsyncIteratorProtocol {
        @usableFromInline var base: AnyAsyncSequence<ProducerResult<Key, Value, PassThrough>>.AsyncIterator

        @inlinable
        init(base: AnyAsyncSequence<ProducerResult<Key, Value, PassThrough>>.AsyncIterator) { self.base = base }

        @inlinable
        mutating func next() async throws -> PassThrough? {
            Self.passThrough(try await base.next())
        }

        @inlinable
        mutating func next(isolation actor: isolated (any Actor)?) async throws(any Error) -> PassThrough? {
            Self.passThrough(try await base.next(isolation: actor))
        }

        /// Consumed, so the pass-through is moved out and the rest released, with no copy.
        @inlinable
        static func passThrough(_ result: __owned ProducerResult<Key, Value, PassThrough>?) -> PassThrough? {
            switch consume result {
            case .single(_, _, let passThrough)?: return passThrough
            case .multi(_, let passThrough)?: return passThrough
            case .passThrough(let passThrough)?: return passThrough
            case nil: return nil
            }
        }
    }
}
