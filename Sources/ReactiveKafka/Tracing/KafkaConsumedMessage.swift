import Tracing

/// An element of a consumer stream: a ``ConsumerRecord`` itself, a ``CommittableMessage``
/// or a ``TransactionalMessage``. What ``extractServiceContext(into:)`` and the `traced`
/// operators read.
public protocol KafkaConsumedMessage: Sendable {
    /// The record's key type.
    associatedtype Key: Sendable
    /// The record's value type.
    associatedtype Value: Sendable
    /// The consumed record.
    var consumedRecord: ConsumerRecord<Key, Value> { get }
    /// The consumer group that read it; nil when the element does not know it (a plain record).
    var consumerGroupId: String? { get }
}

extension ConsumerRecord: KafkaConsumedMessage {
    /// The record itself.
    public var consumedRecord: ConsumerRecord<Key, Value> { self }
    /// Nil: a plain record does not carry its group (pass it to `traced(consumerGroup:)`).
    public var consumerGroupId: String? { nil }
}

extension CommittableMessage: KafkaConsumedMessage {
    /// The record.
    public var consumedRecord: ConsumerRecord<Key, Value> { record }
    /// The group whose offset this message commits; nil for a consumer without a group.
    public var consumerGroupId: String? { committableOffset.partition.groupId.nonEmpty }
}

extension TransactionalMessage: KafkaConsumedMessage {
    /// The record.
    public var consumedRecord: ConsumerRecord<Key, Value> { record }
    /// The group whose offset the transaction sends.
    public var consumerGroupId: String? { partitionOffset.partition.groupId.nonEmpty }
}

extension KafkaConsumedMessage {
    /// The trace context the record's producer propagated in its headers (`traceparent`,
    /// `tracestate` for a W3C-propagating tracer), extracted by the active instrument
    /// (`InstrumentationSystem.instrument`) into `base`.
    ///
    /// Pass it as the parent of the span that processes the record, or link to it. Without
    /// an instrument, or when the record carries no trace context, `base` comes back unchanged.
    public func extractServiceContext(into base: ServiceContext = .topLevel) -> ServiceContext {
        var context = base
        InstrumentationSystem.instrument.extract(
            ConsumerRecordHeadersExtractor.Carrier(origin: consumedRecord.origin), into: &context,
            using: ConsumerRecordHeadersExtractor())
        return context
    }
}

extension String {
    /// Nil for "", which the engine stores for "no group".
    fileprivate var nonEmpty: String? { isEmpty ? nil : self }
}
