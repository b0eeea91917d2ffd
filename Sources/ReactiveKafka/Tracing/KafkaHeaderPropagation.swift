import Tracing

/// Writes an instrument's propagation values (`traceparent`, `tracestate`, … as the
/// instrument names them) into record headers, UTF-8 encoded.
///
/// A value replaces every header of the same name already there: a record carries one
/// trace context, the one injected last.
public struct KafkaHeadersInjector: Injector {
    /// An injector into `[KafkaHeader]`.
    public init() {}

    /// Sets header `key` to `value`.
    public func inject(_ value: String, forKey key: String, into headers: inout [KafkaHeader]) {
        headers.removeAll { $0.key == key }
        headers.append(KafkaHeader(key: key, value: KafkaBytes(value)))
    }
}

/// Reads propagation values straight from a consumed record: only the headers the
/// instrument asks for are looked up, none is copied into a `[KafkaHeader]`. When a name
/// occurs more than once the last header wins (librdkafka's `rd_kafka_header_get_last`);
/// a null value counts as absent.
struct ConsumerRecordHeadersExtractor: Extractor {
    /// The record's origin (given headers, or its fetched librdkafka message).
    struct Carrier: Sendable {
        let origin: RecordOrigin
    }

    func extract(key: String, from carrier: Carrier) -> String? {
        carrier.origin.lastHeaderString(named: key)
    }
}

extension ServiceContext {
    /// The headers the active instrument writes for this context; empty when it writes none
    /// (no instrument bootstrapped, or nothing in the context to propagate).
    var propagationHeaders: [KafkaHeader] {
        var headers: [KafkaHeader] = []
        InstrumentationSystem.instrument.inject(self, into: &headers, using: KafkaHeadersInjector())
        return headers
    }
}
