import Tracing

extension ProducerRecord {
    /// The record with `context`'s trace context in its headers, written by the active
    /// instrument (`InstrumentationSystem.instrument`): `traceparent`, and `tracestate`
    /// when present, for a W3C-propagating tracer. Each injected header replaces any of
    /// the same name.
    ///
    /// Producer stages already inject the context of the task that runs them (see
    /// ``ProducerSettings/propagatesTraceContext``); call this where a record is built inside
    /// a span of its own, such as the closure of `traced(…)`, whose span context is gone by
    /// the time the stage reads the record. A record that carries a trace context keeps it.
    public func withTraceContext(_ context: ServiceContext? = .current) -> Self {
        guard let context else { return self }
        var copy = self
        InstrumentationSystem.instrument.inject(context, into: &copy.headers, using: KafkaHeadersInjector())
        return copy
    }
}

/// The trace context headers a producer path adds to the records it produces: those of the
/// task that produces them, read once per stage run (or per `send`).
///
/// A stage's pump (``ProducerFlowPump``, the transactional stage's) is a task of its own,
/// created by the task that first pulls the stage's output, whose task-local values (the
/// `ServiceContext` among them) it inherits and never changes: so the context is read once
/// per run, not per record, and a run with nothing to inject does no per-record work at all.
@usableFromInline
struct ProducerTraceHeaders: Sendable {
    @usableFromInline let headers: [KafkaHeader]

    /// The headers to add for the current task; nil when there is nothing to add (propagation
    /// off, no `ServiceContext`, or an instrument that writes nothing, such as the no-op one).
    @usableFromInline
    static func ofCurrentTask(enabled: Bool) -> Self? {
        guard enabled, let context = ServiceContext.current else { return nil }
        let headers = context.propagationHeaders
        return headers.isEmpty ? nil : Self(headers: headers)
    }

    @usableFromInline
    init(headers: [KafkaHeader]) { self.headers = headers }

    /// Adds the headers to `record` unless it carries any of them already: a record's own
    /// trace context (``ProducerRecord/withTraceContext(_:)``) is more specific than the run's,
    /// and is kept whole rather than mixed with it.
    @inlinable
    func add<Key, Value>(to record: inout ProducerRecord<Key, Value>) {
        if !record.headers.isEmpty, record.headers.contains(where: { own in headers.contains { $0.key == own.key } }) {
            return
        }
        record.headers.append(contentsOf: headers)
    }

    /// Adds the headers to every record of `message`.
    @inlinable
    func add<Key, Value, PassThrough>(to message: inout ProducerMessage<Key, Value, PassThrough>) {
        switch consume message {
        case .single(var record, let passThrough):
            add(to: &record)
            message = .single(record, passThrough: passThrough)
        case .multi(var records, let passThrough):
            for index in records.indices { add(to: &records[index]) }
            message = .multi(records, passThrough: passThrough)
        case .passThrough(let passThrough):
            message = .passThrough(passThrough)
        }
    }

    /// Adds the headers to every record of `message`, if any.
    @inlinable
    func add<Key, Value, PassThrough>(to message: inout ProducerMessage<Key, Value, PassThrough>?) {
        guard var taken = message.take() else { return }
        add(to: &taken)
        message = consume taken
    }
}
