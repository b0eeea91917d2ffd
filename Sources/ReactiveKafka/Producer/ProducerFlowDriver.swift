/// One run of a ``ProducerFlexiFlow``: starts the pump task on the first
/// `next()`, hands out results a batch at a time, and tears down (closing an
/// owned producer) when the run ends or the iterator is dropped.
final class ProducerFlowDriver<Upstream: AsyncSequence & Sendable, Key: Sendable, Value: Sendable, PassThrough: Sendable>
where Upstream.Element == ProducerMessage<Key, Value, PassThrough> {
    typealias Storage = ProducerFlowStorage<Key, Value, PassThrough>
    typealias Machine = ProducerFlowStateMachine<Key, Value, PassThrough>

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
    private var buffer: [Machine.Result] = []
    private var index = 0

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

    func next() async throws -> Machine.Result? {
        if index < buffer.count {
            index += 1
            return buffer[index - 1]
        }
        let run: Run
        switch phase {
        case .running(let r): run = r
        case .idle: run = try start()
        case .done: return nil
        }
        let returned = buffer.count
        buffer.removeAll(keepingCapacity: true)
        index = 0
        switch await run.storage.next(returned: returned, into: &buffer) {
        case .emit:
            index = 1
            return buffer[0]
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
/// serialises and produces their records, and registers each message before
/// its records so that no delivery report can arrive for an unknown message.
enum ProducerFlowPump {
    static func run<Upstream: AsyncSequence & Sendable, Key: Sendable, Value: Sendable, PassThrough: Sendable>(
        upstream: Upstream, settings: ProducerSettings<Key, Value>,
        storage: ProducerFlowStorage<Key, Value, PassThrough>, engine: ProducerEngine, receiver: UInt16
    ) async where Upstream.Element == ProducerMessage<Key, Value, PassThrough> {
        typealias Machine = ProducerFlowStateMachine<Key, Value, PassThrough>
        var iterator = upstream.makeAsyncIterator()
        var hasCapacity = true

        // False when the run must stop (a record was refused, or cancellation).
        func produce(_ record: ProducerRecord<Key, Value>, _ key: SerializedBytes?, _ value: SerializedBytes?, sequence: UInt64, index: Int) async throws -> Bool {
            let opaque = ProducerOpaque(receiver: receiver, token: Machine.token(sequence: sequence, index: index))
            switch try await engine.produce(
                topic: record.topic, partition: record.partition, key: key, value: value,
                headers: record.headers, timestamp: record.timestamp, opaque: opaque)
            {
            case .enqueued:
                return true
            case .rejected(let code):
                let report = DeliveryReport(token: 0, error: code, partition: record.partition ?? -1, offset: -1, timestamp: nil, reason: nil)
                storage.recordRejected(sequence: sequence, index: index, error: report.failure(topic: record.topic))
                return false
            case .cancelled:
                return false
            }
        }

        do {
            pulling: while true {
                if !hasCapacity {
                    guard await storage.waitForCapacity() else { break pulling }
                }
                guard let message = try await iterator.next() else { break pulling }
                switch message {
                case .single(let record, _):
                    let (key, value) = try settings.serialize(record)
                    guard case .produce(let sequence, let capacity, _) = storage.register(message, recordCount: 1) else { break pulling }
                    hasCapacity = capacity
                    guard try await produce(record, key, value, sequence: sequence, index: 0) else { break pulling }
                case .multi(let records, _):
                    guard records.count <= Machine.maxRecordsPerMessage else {
                        throw KafkaError(
                            .invalidConfiguration,
                            "a multi message holds \(records.count) records; at most \(Machine.maxRecordsPerMessage) are supported: split it into several messages")
                    }
                    var serialized: [(key: SerializedBytes?, value: SerializedBytes?)] = []
                    serialized.reserveCapacity(records.count)
                    for record in records { serialized.append(try settings.serialize(record)) }
                    guard case .produce(let sequence, let capacity, _) = storage.register(message, recordCount: records.count) else { break pulling }
                    hasCapacity = capacity
                    for i in records.indices {
                        guard try await produce(records[i], serialized[i].key, serialized[i].value, sequence: sequence, index: i) else { break pulling }
                    }
                case .passThrough:
                    guard case .produce(_, let capacity, _) = storage.register(message, recordCount: 0) else { break pulling }
                    hasCapacity = capacity
                }
            }
            storage.pumpFinished(error: nil)
        } catch {
            storage.pumpFinished(error: error)
        }
    }
}
