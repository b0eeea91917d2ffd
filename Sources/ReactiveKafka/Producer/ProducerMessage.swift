/// What a producer stage is asked to do with one stream element, carrying a
/// pass-through value to the result: Alpakka's `ProducerMessage.Envelope`.
///
/// The pass-through is typically a ``CommittableOffset``: it reaches the
/// result only once every record of the message is acknowledged, so
/// committing it afterwards gives at-least-once delivery.
public enum ProducerMessage<Key: Sendable, Value: Sendable, PassThrough: Sendable>: Sendable {
    /// Produce one record (1:1).
    case single(ProducerRecord<Key, Value>, passThrough: PassThrough)
    /// Produce several records (1:N); the result waits for all of them. An empty
    /// list behaves like ``passThrough(_:)``.
    case multi([ProducerRecord<Key, Value>], passThrough: PassThrough)
    /// Produce nothing, only pass the value on in order (1:0).
    case passThrough(PassThrough)

    /// The value carried to the result.
    public var passThrough: PassThrough {
        switch self {
        case .single(_, let p), .multi(_, let p), .passThrough(let p): return p
        }
    }

    /// The records to produce.
    var records: [ProducerRecord<Key, Value>] {
        switch self {
        case .single(let r, _): return [r]
        case .multi(let rs, _): return rs
        case .passThrough: return []
        }
    }
}

/// What a producer stage emits for each ``ProducerMessage``, in input order,
/// once all its records are acknowledged: Alpakka's `ProducerMessage.Results`.
public enum ProducerResult<Key: Sendable, Value: Sendable, PassThrough: Sendable>: Sendable {
    /// The record of a `single` message was written.
    case single(RecordMetadata, ProducerRecord<Key, Value>, passThrough: PassThrough)
    /// Every record of a `multi` message was written.
    case multi([ProducedRecord<Key, Value>], passThrough: PassThrough)
    /// A `passThrough` message passed.
    case passThrough(PassThrough)

    // Inlinable: read per result in the caller's pipeline (`map { $0.passThrough }`), where the
    // generic getter copied and destroyed the whole result through value witnesses.
    /// The value carried from the message.
    @inlinable
    public var passThrough: PassThrough {
        switch self {
        case .single(_, _, let p), .multi(_, let p), .passThrough(let p): return p
        }
    }

    /// Where each record was written, in the message's order.
    public var metadata: [RecordMetadata] {
        switch self {
        case .single(let m, _, _): return [m]
        case .multi(let parts, _): return parts.map(\.metadata)
        case .passThrough: return []
        }
    }
}
