import CRdKafka
import StreamKit

/// One run of a ``ProducerFlexiFlow``: starts the pump task on the first
/// `next()`, hands out results a batch at a time, and tears down (closing an
/// owned producer) when the run ends or the iterator is dropped.
///
/// The per-message paths (this type, the pump, the ring) are `@inlinable` and
/// reached through closures built in ``Producer/flexiFlow(_:)``, so they are
/// specialised for the caller's key, value and pass-through types: unspecialised
/// generic code paid a runtime metadata lookup per enum payload per message.
@usableFromInline
final class ProducerFlowDriver<Key: Sendable, Value: Sendable, PassThrough: Sendable> {
    @usableFromInline typealias Message = ProducerMessage<Key, Value, PassThrough>
    @usableFromInline typealias Storage = ProducerFlowStorage<Key, Value, PassThrough>
    @usableFromInline typealias Ring = ProducerFlowRing<Key, Value, PassThrough>

    @usableFromInline
    struct Run {
        @usableFromInline let storage: Storage
        @usableFromInline let producer: KafkaProducer<Key, Value>
        @usableFromInline let owned: Bool
        @usableFromInline let receiver: UInt16
        @usableFromInline let pump: Task<Void, Never>

        @inlinable
        init(
            storage: Storage, producer: KafkaProducer<Key, Value>, owned: Bool, receiver: UInt16,
            pump: Task<Void, Never>
        ) {
            self.storage = storage
            self.producer = producer
            self.owned = owned
            self.receiver = receiver
            self.pump = pump
        }
    }

    @usableFromInline
    enum Phase {
        case idle
        case running(Run)
        case done
    }

    @usableFromInline let upstream: AnyAsyncSequence<Message>
    @usableFromInline let settings: ProducerSettings<Key, Value>
    @usableFromInline let sharedProducer: KafkaProducer<Key, Value>?
    @usableFromInline var phase = Phase.idle
    @usableFromInline let buffer = Ring.ResultBuffer()

    @inlinable
    init(
        upstream: AnyAsyncSequence<Message>, settings: ProducerSettings<Key, Value>,
        sharedProducer: KafkaProducer<Key, Value>?
    ) {
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

    @inlinable
    nonisolated(nonsending) func next() async throws -> Ring.Result? {
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

    @inlinable
    func start() throws(KafkaError) -> Run {
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
        let wake = ParkedBatchWake(engine)
        let pump = Task {
            await UpstreamWait.run(telling: wake) {
                await ProducerFlowPump.run(
                    upstream: upstream, settings: settings, storage: storage, engine: engine, receiver: receiver,
                    wake: wake)
            }
        }
        let run = Run(storage: storage, producer: producer, owned: owned, receiver: receiver, pump: pump)
        phase = .running(run)
        return run
    }

    @usableFromInline
    nonisolated(nonsending) func finish(_ run: Run) async {
        phase = .done
        run.pump.cancel()
        run.producer.engine.deregister(run.receiver)
        if run.owned { await run.producer.close() }
    }
}

/// The upstream side of a run: pulls messages while there is capacity,
/// serialises them, publishes each in the ring and produces its records.
@usableFromInline
enum ProducerFlowPump {
    @inlinable
    static func run<Key: Sendable, Value: Sendable, PassThrough: Sendable>(
        upstream: AnyAsyncSequence<ProducerMessage<Key, Value, PassThrough>>, settings: ProducerSettings<Key, Value>,
        storage: ProducerFlowStorage<Key, Value, PassThrough>, engine: ProducerEngine, receiver: UInt16,
        wake: ParkedBatchWake? = nil
    ) async {
        typealias Ring = ProducerFlowRing<Key, Value, PassThrough>
        let ring = storage.ring
        var iterator = upstream.makeAsyncIterator()
        var topicCache = ProducerEngine.TopicCache()
        // Read once: this task's trace context is the one it inherited and never changes.
        let traceHeaders = ProducerTraceHeaders.ofCurrentTask(enabled: settings.propagatesTraceContext)
        // Records are freed on this thread, where they were allocated (see `ProducerEngine.beginReaping`).
        engine.beginReaping()
        let batch = ProducerFlowBatch(
            receiver: receiver, token: { Ring.token(position: $0, index: 0) },
            refused: { position, code, partition in
                storage.recordRefused(
                    position: position, code: code, topic: ring.topic(at: position, index: 0), partition: partition)
            })
        // While the pump waits for upstream, the poll thread produces what it collected.
        engine.register(batch)
        wake?.watch(batch)
        defer {
            engine.deregister(batch)
            engine.endReaping()
        }

        // Produces what `batch` collected, suspending while librdkafka's queue is full;
        // false when the run must stop.
        func flushBatch() async throws(KafkaError) -> Bool {
            while true {
                let generation = engine.spaceGenerationNow
                if try batch.flush(engine) == .all { return !storage.shouldStop && !batch.refusedAny }
                engine.reapDeliveredEvents()
                await engine.waitForSpace(since: generation, cancellable: true)
                if Task.isCancelled || storage.shouldStop { return false }
            }
        }

        // False when the run must stop (a record was refused, or cancellation). The
        // common case is one synchronous produce call: no suspension point, no async frame.
        @inline(__always)
        func produce(
            _ record: ProducerRecord<Key, Value>, _ key: SerializedBytes?, _ value: SerializedBytes?, position: Int,
            index: Int
        ) async throws(KafkaError) -> Bool {
            let opaque = ProducerOpaque(receiver: receiver, token: Ring.token(position: position, index: index))
            while true {
                let generation = engine.spaceGenerationNow
                let code = try engine.tryProduce(
                    topic: record.topic, partition: record.partition, key: key, value: value,
                    headers: record.headers, timestamp: record.timestamp, opaque: opaque, topicCache: &topicCache)
                if code == RD_KAFKA_RESP_ERR_NO_ERROR { return true }
                if code == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                    // Back-pressure from librdkafka: suspend until delivery reports free space.
                    engine.reapDeliveredEvents()
                    await engine.waitForSpace(since: generation, cancellable: true)
                    if Task.isCancelled || storage.shouldStop { return false }
                    continue
                }
                if code == RD_KAFKA_RESP_ERR__FATAL {
                    throw engine.raiseFatalError()
                }
                storage.recordRefused(position: position, code: code, topic: record.topic, partition: record.partition)
                return false
            }
        }

        // `produce` for a single record without headers whose topic handle is resolved.
        @inline(__always)
        func produceSingle(
            rkt: OpaquePointer, partition: Int32?, timestamp: KafkaTimestamp?, _ key: SerializedBytes?,
            _ value: SerializedBytes?, position: Int
        ) async throws(KafkaError) -> Bool {
            let opaque = ProducerOpaque(receiver: receiver, token: Ring.token(position: position, index: 0))
            while true {
                let generation = engine.spaceGenerationNow
                let code = try engine.tryProduce(
                    rkt: rkt, partition: partition, key: key, value: value, timestamp: timestamp, opaque: opaque)
                if code == RD_KAFKA_RESP_ERR_NO_ERROR { return true }
                if code == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                    engine.reapDeliveredEvents()
                    await engine.waitForSpace(since: generation, cancellable: true)
                    if Task.isCancelled || storage.shouldStop { return false }
                    continue
                }
                if code == RD_KAFKA_RESP_ERR__FATAL {
                    throw engine.raiseFatalError()
                }
                storage.recordRefused(
                    position: position, code: code, topic: ring.topic(at: position, index: 0), partition: partition)
                return false
            }
        }

        do {
            pulling: while !storage.shouldStop {
                engine.reapDeliveredEvents()
                if !ring.pumpHasCapacity {
                    // The collected records must be produced to be acknowledged.
                    if !batch.isEmpty { guard try await flushBatch() else { break pulling } }
                    guard await storage.waitForCapacity() else { break pulling }
                }
                // Waiting for upstream with records collected: the poll thread may produce them.
                let parked = !batch.isEmpty
                if parked { batch.park() }
                var next: ProducerMessage<Key, Value, PassThrough>?
                do {
                    next = try await iterator.next()
                } catch {
                    if parked, !batch.tryUnpark() { await batch.unparkAfterFlush() }
                    throw error
                }
                if parked, !batch.tryUnpark() { await batch.unparkAfterFlush() }
                if let traceHeaders { traceHeaders.add(to: &next) }
                // Taken apart straight from `next()` and rebuilt, so that the parts move into
                // the ring instead of being copied (a copy is a retain/release of each part).
                switch consume next {
                case nil:
                    if !batch.isEmpty { guard try await flushBatch() else { break pulling } }
                    break pulling
                case .single(let record, let passThrough)?:
                    let batchable = record.headers.isEmpty && record.timestamp == nil
                    // `KafkaBytes` written as they are are copied straight from the record into the
                    // batch; they stay valid, as the ring holds the record until its delivery report.
                    let inPlace = batchable ? settings.bytesInPlace(record) : nil
                    let serialized = inPlace == nil ? try settings.serialize(record) : (key: nil, value: nil)
                    if batchable, let rkt = try engine.resolveTopic(record.topic, cache: &topicCache) {
                        // Collected, produced with the records around it (see `ProducerFlowBatch`).
                        let partition = record.partition
                        if !batch.accepts(topic: rkt, explicitPartition: partition != nil) {
                            guard try await flushBatch() else { break pulling }
                        }
                        let position = ring.publish(
                            .single(consume record, passThrough: consume passThrough), recordCount: 1)
                        if let inPlace {
                            batch.add(
                                position: position, topic: rkt, partition: partition, key: inPlace.key,
                                value: inPlace.value, engine: engine)
                        } else {
                            batch.add(
                                position: position, topic: rkt, partition: partition, key: serialized.key,
                                value: serialized.value, engine: engine)
                        }
                        if batch.isDue { guard try await flushBatch() else { break pulling } }
                        continue pulling
                    }
                    // Not collected (headers, a timestamp of its own, or no topic handle).
                    let (key, value) = inPlace == nil ? serialized : try settings.serialize(record)
                    // Anything produced one by one goes after what was collected (per-partition order).
                    if !batch.isEmpty { guard try await flushBatch() else { break pulling } }
                    if record.headers.isEmpty, let rkt = try engine.resolveTopic(record.topic, cache: &topicCache) {
                        // The common case produces from the record's fields read before publishing,
                        // so the record moves into the ring without a copy (no retain/release
                        // of its topic and value per message).
                        let partition = record.partition
                        let timestamp = record.timestamp
                        let position = ring.publish(
                            .single(consume record, passThrough: consume passThrough), recordCount: 1)
                        guard
                            try await produceSingle(
                                rkt: rkt, partition: partition, timestamp: timestamp, key, value, position: position)
                        else {
                            break pulling
                        }
                    } else {
                        let position = ring.publish(.single(record, passThrough: passThrough), recordCount: 1)
                        guard try await produce(record, key, value, position: position, index: 0) else { break pulling }
                    }
                case .multi(let records, let passThrough)?:
                    guard records.count <= Ring.maxRecordsPerMessage else {
                        throw KafkaError(
                            .invalidConfiguration,
                            "a multi message holds \(records.count) records; at most \(Ring.maxRecordsPerMessage) are supported: split it into several messages"
                        )
                    }
                    var serialized: [(key: SerializedBytes?, value: SerializedBytes?)] = []
                    serialized.reserveCapacity(records.count)
                    for record in records { serialized.append(try settings.serialize(record)) }
                    if !batch.isEmpty { guard try await flushBatch() else { break pulling } }
                    let position = ring.publish(.multi(records, passThrough: passThrough), recordCount: records.count)
                    if records.isEmpty { storage.pumpCompletedHead() }
                    for i in records.indices {
                        guard
                            try await produce(
                                records[i], serialized[i].key, serialized[i].value, position: position, index: i)
                        else { break pulling }
                    }
                case .passThrough(let passThrough)?:
                    _ = ring.publish(.passThrough(passThrough), recordCount: 0)
                    storage.pumpCompletedHead()
                }
            }
            storage.pumpFinished(error: nil)
        } catch {
            // The results before the failure are emitted first: their records must be produced.
            // (When the engine itself failed, this fails again at once and changes nothing.)
            if !batch.isEmpty { _ = try? await flushBatch() }
            storage.pumpFinished(error: error)
        }
    }
}
