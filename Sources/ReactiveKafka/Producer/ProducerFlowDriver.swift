import CRdKafka

/// One run of a ``ProducerFlexiFlow``: starts the pump task on the first
/// `next()`, hands out results a batch at a time, and tears down (closing an
/// owned producer) when the run ends or the iterator is dropped.
final class ProducerFlowDriver<Upstream: AsyncSequence & Sendable, Key: Sendable, Value: Sendable, PassThrough: Sendable>
where Upstream.Element == ProducerMessage<Key, Value, PassThrough> {
    typealias Storage = ProducerFlowStorage<Key, Value, PassThrough>
    typealias Ring = ProducerFlowRing<Key, Value, PassThrough>

    private struct Run {
        let storage: Storage
        let producer: KafkaProducer<Key, Value>
        let owned: Bool
        let receiver: UInt16
        let pump: Task<Void, Never>
    }

    private enum Phase {
        case idle
        case running(Run)
        case done
    }

    private let upstream: Upstream
    private let settings: ProducerSettings<Key, Value>
    private let sharedProducer: KafkaProducer<Key, Value>?
    private var phase = Phase.idle
    private let buffer = Ring.ResultBuffer()

    init(upstream: Upstream, settings: ProducerSettings<Key, Value>, sharedProducer: KafkaProducer<Key, Value>?) {
        self.upstream = upstream
        self.settings = settings
        self.sharedProducer = sharedProducer
    }

    deinit {
        guard case .running(let run) = phase else { return }
        run.storage.cancelDownstream()
        run.pump.cancel()
        run.producer.engine.deregister(run.receiver)
        if run.owned { run.producer.engine.beginClose(timeout: settings.closeTimeout) }
    }

    func next() async throws -> Ring.Result? {
        if let result = buffer.take() { return result }
        let run: Run
        switch phase {
        case .running(let r): run = r
        case .idle: run = try start()
        case .done: return nil
        }
        switch await run.storage.next(into: buffer) {
        case .emit:
            return buffer.take()
        case .finish:
            await finish(run)
            return nil
        case .fail(let error):
            await finish(run)
            throw error
        case .cancelled:
            await finish(run)
            throw CancellationError()
        }
    }

    private func start() throws(KafkaError) -> Run {
        phase = .done
        try settings.validate()
        let producer: KafkaProducer<Key, Value>
        if let sharedProducer {
            producer = sharedProducer
        } else {
            producer = try KafkaProducer(settings)
        }
        let owned = sharedProducer == nil
        let storage = Storage(parallelism: settings.parallelism)
        let receiver: UInt16
        do {
            receiver = try producer.engine.register(storage)
        } catch {
            if owned { producer.engine.beginClose(timeout: .zero) }
            throw error
        }
        let (upstream, settings, engine) = (self.upstream, self.settings, producer.engine)
        let pump = Task {
            await ProducerFlowPump.run(upstream: upstream, settings: settings, storage: storage, engine: engine, receiver: receiver)
        }
        let run = Run(storage: storage, producer: producer, owned: owned, receiver: receiver, pump: pump)
        phase = .running(run)
        return run
    }

    private func finish(_ run: Run) async {
        phase = .done
        run.pump.cancel()
        run.producer.engine.deregister(run.receiver)
        if run.owned { await run.producer.close() }
    }
}

/// The upstream side of a run: pulls messages while there is capacity,
/// serialises them, publishes each in the ring and produces its records.
enum ProducerFlowPump {
    static func run<Upstream: AsyncSequence & Sendable, Key: Sendable, Value: Sendable, PassThrough: Sendable>(
        upstream: Upstream, settings: ProducerSettings<Key, Value>,
        storage: ProducerFlowStorage<Key, Value, PassThrough>, engine: ProducerEngine, receiver: UInt16
    ) async where Upstream.Element == ProducerMessage<Key, Value, PassThrough> {
        typealias Ring = ProducerFlowRing<Key, Value, PassThrough>
        let ring = storage.ring
        var iterator = upstream.makeAsyncIterator()
        var topicCache = ProducerEngine.TopicCache()

        // False when the run must stop (a record was refused, or cancellation). The
        // common case is one synchronous produce call: no suspension point, no async frame.
        @inline(__always)
        func produce(_ record: ProducerRecord<Key, Value>, _ key: SerializedBytes?, _ value: SerializedBytes?, position: Int, index: Int) async throws(KafkaError) -> Bool {
            let opaque = ProducerOpaque(receiver: receiver, token: Ring.token(position: position, index: index))
            while true {
                let generation = engine.spaceGenerationNow
                let code = try engine.tryProduce(
                    topic: record.topic, partition: record.partition, key: key, value: value,
                    headers: record.headers, timestamp: record.timestamp, opaque: opaque, topicCache: &topicCache)
                if code == RD_KAFKA_RESP_ERR_NO_ERROR { return true }
                if code == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                    // Back-pressure from librdkafka: suspend until delivery reports free space.
                    await engine.waitForSpace(since: generation, cancellable: true)
                    if Task.isCancelled || storage.shouldStop { return false }
                    continue
                }
                if code == RD_KAFKA_RESP_ERR__FATAL {
                    throw engine.fatalError ?? KafkaError.fromCode(code, "producing to \(record.topic)", kind: .fatal)
                }
                let report = DeliveryReport(token: 0, error: code, partition: record.partition ?? -1, offset: -1, timestamp: nil, reason: nil)
                ring.fail(position: position, error: report.failure(topic: record.topic))
                storage.pumpCompletedHead()
                return false
            }
        }

        do {
            pulling: while !storage.shouldStop {
                if !ring.pumpHasCapacity {
                    guard await storage.waitForCapacity() else { break pulling }
                }
                guard let message = try await iterator.next() else { break pulling }
                switch message {
                case .single(let record, _):
                    let (key, value) = try settings.serialize(record)
                    let position = ring.publish(consume message, recordCount: 1)
                    guard try await produce(record, key, value, position: position, index: 0) else { break pulling }
                case .multi(let records, _):
                    guard records.count <= Ring.maxRecordsPerMessage else {
                        throw KafkaError(
                            .invalidConfiguration,
                            "a multi message holds \(records.count) records; at most \(Ring.maxRecordsPerMessage) are supported: split it into several messages")
                    }
                    var serialized: [(key: SerializedBytes?, value: SerializedBytes?)] = []
                    serialized.reserveCapacity(records.count)
                    for record in records { serialized.append(try settings.serialize(record)) }
                    let position = ring.publish(message, recordCount: records.count)
                    if records.isEmpty { storage.pumpCompletedHead() }
                    for i in records.indices {
                        guard try await produce(records[i], serialized[i].key, serialized[i].value, position: position, index: i) else { break pulling }
                    }
                case .passThrough:
                    _ = ring.publish(message, recordCount: 0)
                    storage.pumpCompletedHead()
                }
            }
            storage.pumpFinished(error: nil)
        } catch {
            storage.pumpFinished(error: error)
        }
    }
}
