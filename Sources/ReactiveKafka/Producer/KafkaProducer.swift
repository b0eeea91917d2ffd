/// A Kafka producer: one librdkafka producer handle, its delivery-report
/// thread, and the serialisers of its settings.
///
/// Share one between several ``Producer/flexiFlow(_:producer:)`` stages, or
/// ``send(_:)`` records one at a time. Producing never blocks a thread: when
/// librdkafka's queue (`queue.buffering.max.messages`) is full the sending task
/// suspends until delivery reports free space. Call ``close()`` when done: it
/// flushes with the settings' `closeTimeout`, then destroys the handle; if you
/// drop the last reference without closing, the same happens in the background.
public final class KafkaProducer<Key: Sendable, Value: Sendable>: Sendable {
    @usableFromInline let engine: ProducerEngine
    /// The settings the producer was created with.
    public let settings: ProducerSettings<Key, Value>

    /// Creates and starts a producer.
    /// - Throws: ``KafkaError/Kind/invalidConfiguration`` (quoting librdkafka) when a
    ///   property or connector setting is rejected.
    public init(_ settings: ProducerSettings<Key, Value>) throws(KafkaError) {
        try settings.validate()
        self.settings = settings
        self.engine = try ProducerEngine(properties: settings.properties, metrics: settings.metrics)
    }

    /// A producer over `engine`, owned by its creator (a transactional producer's engine, its
    /// records produced into the open transaction).
    init(_ settings: ProducerSettings<Key, Value>, engine: ProducerEngine) {
        self.settings = settings
        self.engine = engine
    }

    deinit { engine.beginClose(timeout: settings.closeTimeout) }

    /// Sends one record and waits for the broker's acknowledgement.
    ///
    /// The caller's trace context goes into the record's headers (see
    /// ``ProducerSettings/propagatesTraceContext``).
    ///
    /// Suspends while librdkafka's queue is full (this wait is not cut short by
    /// cancellation: the record is produced once space frees up).
    /// - Throws: ``KafkaError/Kind/serialization`` if a serialiser throws,
    ///   ``KafkaError/Kind/deliveryFailed`` when the record was not written,
    ///   ``KafkaError/Kind/shutDown`` after ``close()``, ``KafkaError/Kind/fatal`` after a fatal error.
    public func send(_ record: ProducerRecord<Key, Value>) async throws(KafkaError) -> RecordMetadata {
        let token = try await enqueue(record)
        return try await delivery(of: token, record)
    }

    /// Hands `record` to librdkafka (with the caller's trace context, as ``send(_:)``) and returns
    /// the token its delivery report comes with; every token must be waited for with
    /// ``delivery(of:_:)``. Split from ``send(_:)`` so that several records go out before the
    /// first acknowledgement is awaited (the records a parallel source's handler returns).
    func enqueue(_ record: ProducerRecord<Key, Value>) async throws(KafkaError) -> UInt64 {
        var record = record
        ProducerTraceHeaders.ofCurrentTask(enabled: settings.propagatesTraceContext)?.add(to: &record)
        let (key, value) = try settings.serialize(record)
        let direct = engine.direct
        let token = direct.reserve()
        let outcome: ProducerEngine.ProduceOutcome
        do {
            outcome = try await engine.produce(
                topic: record.topic, partition: record.partition, key: key, value: value,
                headers: record.headers, timestamp: record.timestamp,
                opaque: ProducerOpaque(receiver: 0, token: token), cancellable: false)
        } catch {
            direct.release(token)
            throw error
        }
        switch outcome {
        case .enqueued:
            return token
        case .rejected(let code):
            direct.release(token)
            throw DeliveryReport(
                token: token, error: code, partition: record.partition ?? -1, offset: -1, timestamp: nil
            )
            .failure(topic: record.topic)
        case .cancelled:
            direct.release(token)
            throw ProducerEngine.shutDownError
        }
    }

    /// Waits for the acknowledgement of `record`, enqueued with `token` by ``enqueue(_:)``.
    func delivery(of token: UInt64, _ record: ProducerRecord<Key, Value>) async throws(KafkaError) -> RecordMetadata {
        let report = try await engine.direct.wait(token).get()
        guard report.succeeded else {
            // After a fatal error librdkafka fails queued records with the underlying code.
            throw engine.fatalError ?? report.failure(topic: record.topic)
        }
        return RecordMetadata(
            topic: record.topic, partition: report.partition, offset: report.offset, timestamp: report.timestamp)
    }

    /// Stops accepting records, waits up to the settings' `closeTimeout` for
    /// those in flight, fails the rest (with ``KafkaError/Kind/shutDown``) and
    /// destroys the handle. Idempotent.
    public func close() async {
        await engine.close(timeout: settings.closeTimeout)
    }

    /// Like ``close()``, waiting at most `timeout` for records in flight.
    public func close(timeout: Duration) async {
        await engine.close(timeout: timeout)
    }
}
