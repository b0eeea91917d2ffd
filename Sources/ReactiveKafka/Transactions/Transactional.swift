import Logging
import StreamKit

/// Exactly-once stages: Alpakka's `Transactional`.
///
/// A transactional sink or flow writes the records of the messages it
/// receives in Kafka transactions, together with the consumed offsets their
/// ``TransactionalOffset`` pass-throughs name (KIP-447: one transactional
/// producer per stream, the consumer group's metadata sent with the offsets).
/// Every `eosCommitInterval` it stops pulling, waits for every record to be
/// acknowledged, sends the offsets, commits, and begins the next transaction.
/// Readers with `isolation.level=read_committed` see each input record's
/// output exactly once, and the group's committed offsets move with it.
public enum Transactional {
    /// A sink that produces every message's records in transactions and commits the
    /// consumed offsets with them. It completes once upstream has completed and the last
    /// transaction is committed.
    ///
    /// - `init_transactions` runs when the stream starts, fencing an earlier instance with
    ///   the same `transactionalId` and aborting its open transaction.
    /// - An abortable error aborts the transaction and rewinds the
    ///   ``source(_:subscription:logger:)`` to the last committed offsets, then goes on:
    ///   nothing is skipped, nothing aborted is committed. A fatal error (another instance
    ///   took over the transactional id: ``KafkaError/Kind/fenced``) fails the stream.
    /// - Back-pressure: at most `settings.parallelism` records are unacknowledged, a full
    ///   librdkafka queue suspends producing, and nothing is pulled while a transaction commits.
    /// - Upstream failing or the stream being cancelled aborts the open transaction.
    ///
    /// - Parameters:
    ///   - settings: the producer's settings; `transactional.id` is set from `transactionalId`.
    ///   - transactionalId: unique per running instance; a restarted instance must reuse it.
    ///   - eosCommitInterval: how often to commit; `nil` takes `settings.eosCommitInterval` (100 ms by default).
    ///   - logger: where aborted transactions and their causes are logged.
    public static func sink<Key, Value>(
        _ settings: ProducerSettings<Key, Value>, transactionalId: String, eosCommitInterval: Duration? = nil,
        logger: Logger = Logger(label: "reactive-kafka.transactional")
    ) -> TransactionalSink<Key, Value> {
        TransactionalSink(
            stage: TransactionalStage(
                settings: settings, transactionalId: transactionalId,
                interval: eosCommitInterval ?? settings.eosCommitInterval, logger: logger))
    }

    /// Like ``sink(_:transactionalId:eosCommitInterval:logger:)``, emitting a
    /// ``ProducerResult`` per message once its transaction has committed (in input
    /// order; messages of an aborted transaction give no result, they are read again).
    /// At most 2 × `settings.parallelism` messages wait for their transaction or for
    /// downstream; when the open transaction alone fills that window it commits early.
    public static func flow<Key, Value>(
        _ settings: ProducerSettings<Key, Value>, transactionalId: String, eosCommitInterval: Duration? = nil,
        logger: Logger = Logger(label: "reactive-kafka.transactional")
    ) -> TransactionalFlow<Key, Value> {
        TransactionalFlow(
            stage: TransactionalStage(
                settings: settings, transactionalId: transactionalId,
                interval: eosCommitInterval ?? settings.eosCommitInterval, logger: logger))
    }
}

extension Transactional {
    /// ``sink(_:transactionalId:eosCommitInterval:logger:)`` for ``MessageWithOffset`` pairs of what to produce and
    /// the consumed offset it came from, as ``sourceWithOffsetContext(_:subscription:logger:)``
    /// emits them after a transformation: Alpakka's `sinkWithOffsetContext`.
    public static func sinkWithOffsetContext<Key, Value>(
        _ settings: ProducerSettings<Key, Value>, transactionalId: String, eosCommitInterval: Duration? = nil,
        logger: Logger = Logger(label: "reactive-kafka.transactional")
    ) -> SinkOf<MessageWithOffset<Key, Value, TransactionalOffset>, Void> {
        let sink = Transactional.sink(
            settings, transactionalId: transactionalId, eosCommitInterval: eosCommitInterval, logger: logger)
        return SinkOf { upstream in
            try await sink.run(upstream.map { @Sendable pair in withOffset(pair.message, pair.offset) })
        }
    }

    /// ``flow(_:transactionalId:eosCommitInterval:logger:)`` for ``MessageWithOffset`` pairs: Alpakka's `flowWithOffsetContext`.
    public static func flowWithOffsetContext<Key, Value>(
        _ settings: ProducerSettings<Key, Value>, transactionalId: String, eosCommitInterval: Duration? = nil,
        logger: Logger = Logger(label: "reactive-kafka.transactional")
    ) -> FlowOf<MessageWithOffset<Key, Value, TransactionalOffset>, ProducerResult<Key, Value, TransactionalOffset>> {
        let flow = Transactional.flow(
            settings, transactionalId: transactionalId, eosCommitInterval: eosCommitInterval, logger: logger)
        return FlowOf { upstream in
            flow.apply(upstream.map { @Sendable pair in withOffset(pair.message, pair.offset) })
        }
    }

    private static func withOffset<Key, Value>(
        _ message: ProducerMessage<Key, Value, Void>, _ offset: TransactionalOffset
    ) -> ProducerMessage<Key, Value, TransactionalOffset> {
        switch message {
        case .single(let record, _): return .single(record, passThrough: offset)
        case .multi(let records, _): return .multi(records, passThrough: offset)
        case .passThrough: return .passThrough(offset)
        }
    }
}

/// What a transactional sink or flow is configured with; each run creates its producer from it.
struct TransactionalStage<Key: Sendable, Value: Sendable>: Sendable {
    let settings: ProducerSettings<Key, Value>
    let transactionalId: String
    let interval: Duration
    let logger: Logger
    /// How long init, offset sends and the wait for acknowledgements may block.
    var callTimeout: Duration = .seconds(30)

    func makeRun(emitsResults: Bool) throws(KafkaError) -> TransactionalStageRun<Key, Value> {
        try settings.validate()
        guard interval > .zero else {
            throw KafkaError(.invalidConfiguration, "eosCommitInterval must be positive, got \(interval)")
        }
        let producer = try TransactionalProducerEngine(
            properties: settings.properties, transactionalId: transactionalId, callTimeout: callTimeout,
            metrics: settings.metrics)
        return TransactionalStageRun(
            settings: settings, producer: producer, interval: interval, emitsResults: emitsResults, logger: logger)
    }
}

/// The sink of ``Transactional/sink(_:transactionalId:eosCommitInterval:logger:)``.
public struct TransactionalSink<Key: Sendable, Value: Sendable>: Sink {
    /// The elements this stage takes.
    public typealias Input = ProducerMessage<Key, Value, TransactionalOffset>
    /// The sink completes with no value.
    public typealias Result = Void

    let stage: TransactionalStage<Key, Value>

    // Inlinable, so the upstream is erased where its type is known (see `AnyAsyncSequence`).
    /// Writes every message of `upstream` in transactions; returns when the last is committed.
    @inlinable
    public func run<Upstream: AsyncSequence & Sendable>(_ upstream: Upstream) async throws
    where Upstream.Element == Input {
        try await run(erased: AnyAsyncSequence(upstream))
    }

    @usableFromInline
    func run(erased messages: AnyAsyncSequence<Input>) async throws {
        // Raw bytes take a path compiled for them: unspecialised generic code looks up type
        // metadata per message. Same behaviour.
        if let bytes = self as? TransactionalSink<KafkaBytes, KafkaBytes>,
            let bytesMessages = messages as Any
                as? AnyAsyncSequence<ProducerMessage<KafkaBytes, KafkaBytes, TransactionalOffset>>
        {
            try await bytes.runBytes(bytesMessages)
            return
        }
        try await stage.makeRun(emitsResults: false).run(messages)
    }
}

extension TransactionalSink where Key == KafkaBytes, Value == KafkaBytes {
    func runBytes(_ messages: AnyAsyncSequence<ProducerMessage<KafkaBytes, KafkaBytes, TransactionalOffset>>)
        async throws
    {
        let run: TransactionalStageRun<KafkaBytes, KafkaBytes> = try stage.makeRun(emitsResults: false)
        try await run.run(messages)
    }
}

/// The flow of ``Transactional/flow(_:transactionalId:eosCommitInterval:logger:)``.
/// Nothing runs until the output is iterated; each iteration is one run with its own producer.
public struct TransactionalFlow<Key: Sendable, Value: Sendable>: Flow {
    /// The elements this stage takes.
    public typealias Input = ProducerMessage<Key, Value, TransactionalOffset>
    /// The elements this stage emits.
    public typealias Output = ProducerResult<Key, Value, TransactionalOffset>

    let stage: TransactionalStage<Key, Value>

    // Inlinable, so the upstream is erased where its type is known (see `AnyAsyncSequence`).
    /// Writes every message of `upstream` in transactions and emits each result once its transaction is committed.
    @inlinable
    public func apply<Upstream: AsyncSequence & Sendable>(_ upstream: Upstream) -> AnyAsyncSequence<Output>
    where Upstream.Element == Input {
        apply(erased: AnyAsyncSequence(upstream))
    }

    @usableFromInline
    func apply(erased messages: AnyAsyncSequence<Input>) -> AnyAsyncSequence<Output> {
        // Raw bytes take a path compiled for them (see TransactionalSink.run).
        if let bytes = self as? TransactionalFlow<KafkaBytes, KafkaBytes>,
            let bytesMessages = messages as Any
                as? AnyAsyncSequence<ProducerMessage<KafkaBytes, KafkaBytes, TransactionalOffset>>,
            let results = bytes.applyBytes(bytesMessages) as Any as? AnyAsyncSequence<Output>
        {
            return results
        }
        return AnyAsyncSequence(TransactionalFlowSequence(stage: stage, upstream: messages))
    }
}

extension TransactionalFlow where Key == KafkaBytes, Value == KafkaBytes {
    func applyBytes(_ messages: AnyAsyncSequence<ProducerMessage<KafkaBytes, KafkaBytes, TransactionalOffset>>)
        -> AnyAsyncSequence<Output>
    {
        AnyAsyncSequence(TransactionalFlowSequence<KafkaBytes, KafkaBytes>(stage: stage, upstream: messages))
    }
}

/// The output of a ``TransactionalFlow``: starts the run on the first `next()`,
/// takes committed results a batch at a time, and cancels the run when dropped.
struct TransactionalFlowSequence<Key: Sendable, Value: Sendable>: AsyncSequence, Sendable {
    typealias Element = ProducerResult<Key, Value, TransactionalOffset>

    let stage: TransactionalStage<Key, Value>
    let upstream: AnyAsyncSequence<ProducerMessage<Key, Value, TransactionalOffset>>

    func makeAsyncIterator() -> Iterator { Iterator(driver: Driver(stage: stage, upstream: upstream)) }

    final class Driver {
        let stage: TransactionalStage<Key, Value>
        let upstream: AnyAsyncSequence<ProducerMessage<Key, Value, TransactionalOffset>>
        var run: TransactionalStageRun<Key, Value>?
        var task: Task<Void, any Error>?
        var buffer: [Element] = []
        var index = 0
        var done = false

        init(
            stage: TransactionalStage<Key, Value>,
            upstream: AnyAsyncSequence<ProducerMessage<Key, Value, TransactionalOffset>>
        ) {
            self.stage = stage
            self.upstream = upstream
        }

        deinit { task?.cancel() }

        func next() async throws -> Element? {
            if index < buffer.count {
                defer { index += 1 }
                return buffer[index]
            }
            if done { return nil }
            let run: TransactionalStageRun<Key, Value>
            if let existing = self.run {
                run = existing
            } else {
                do {
                    run = try stage.makeRun(emitsResults: true)
                } catch {
                    done = true
                    throw error
                }
                self.run = run
                let upstream = self.upstream
                task = Task { try await run.run(upstream) }
            }
            buffer.removeAll(keepingCapacity: true)
            index = 0
            do {
                guard try await run.nextResults(into: &buffer) else {
                    done = true
                    // The run ended: surface its own error (an abort at shutdown, …) if it had one.
                    _ = try await task?.value
                    return nil
                }
            } catch {
                done = true
                task?.cancel()
                throw error
            }
            defer { index = 1 }
            return buffer.first
        }
    }

    struct Iterator: AsyncIteratorProtocol {
        let driver: Driver
        mutating func next() async throws -> Element? { try await driver.next() }
    }
}
