import StreamKit
import Tracing

extension AsyncSequence where Self: Sendable, Element: KafkaConsumedMessage {
    /// Processes each consumer message inside a consumer span of its own: one span per
    /// record, the child of the trace context the record's producer propagated (see
    /// ``KafkaConsumedMessage/extractServiceContext(into:)``), or of the task's current
    /// context when the record carries none. Emits what `process` returns.
    ///
    /// The span is named `process <topic>`, has kind `.consumer` and OpenTelemetry's
    /// messaging attributes (system, destination, partition, offset, group, and the key
    /// when `messageKey` renders it); it ends when `process` returns, recording the error
    /// when it throws. Inside `process`, `ServiceContext.current` is the span's context:
    /// records built there carry it on with ``ProducerRecord/withTraceContext(_:)``.
    ///
    /// A span per record costs a span, its attributes and a header lookup per record; for
    /// high-volume streams trace batches instead (`groupedWithin(…)`, then `traced` on the
    /// arrays: one span per batch, linked to every record's producer).
    ///
    /// Back-pressure: one message at a time; the next is pulled only when downstream asks
    /// for the next output. Cancellation and errors: `process` runs in the consuming task
    /// and sees its cancellation; an error from upstream or from `process` ends the sequence.
    ///
    /// - Parameters:
    ///   - consumerGroup: the group for `messaging.kafka.consumer.group`; by default the
    ///     message's own (committable and transactional messages carry it, plain records don't).
    ///   - messageKey: renders a record's key for `messaging.kafka.message.key`; nil (the
    ///     default) leaves keys out of spans.
    ///   - process: the processing of one message.
    public func traced<Output: Sendable>(
        consumerGroup: String? = nil,
        messageKey: (@Sendable (Element) -> String?)? = nil,
        _ process: @escaping @Sendable (Element) async throws -> Output
    ) -> AsyncTracedSequence<Self, Output> {
        AsyncTracedSequence(base: self, consumerGroup: consumerGroup, messageKey: messageKey, process: process)
    }
}

extension Source where Element: KafkaConsumedMessage {
    /// ``AsyncSequence/traced(consumerGroup:messageKey:_:)-(_,_,_)``, keeping the materialized
    /// value (a consumer source's ``ConsumerControl``).
    public func traced<Output: Sendable>(
        consumerGroup: String? = nil,
        messageKey: (@Sendable (Element) -> String?)? = nil,
        _ process: @escaping @Sendable (Element) async throws -> Output
    ) -> Source<AsyncTracedSequence<Base, Output>, Materialized> {
        Source<AsyncTracedSequence<Base, Output>, Materialized>(
            AsyncTracedSequence(base: base, consumerGroup: consumerGroup, messageKey: messageKey, process: process),
            materialized: materialized)
    }
}

/// The sequence of ``AsyncSequence/traced(consumerGroup:messageKey:_:)-(_,_,_)``: what
/// `process` returns for each message, each computed inside a consumer span.
public struct AsyncTracedSequence<Base: AsyncSequence & Sendable, Output: Sendable>: AsyncSequence, Sendable
where Base.Element: KafkaConsumedMessage {
    public typealias Element = Output
    public typealias Failure = any Error

    let base: Base
    let consumerGroup: String?
    let messageKey: (@Sendable (Base.Element) -> String?)?
    let process: @Sendable (Base.Element) async throws -> Output

    init(
        base: Base, consumerGroup: String?, messageKey: (@Sendable (Base.Element) -> String?)?,
        process: @escaping @Sendable (Base.Element) async throws -> Output
    ) {
        self.base = base
        self.consumerGroup = consumerGroup
        self.messageKey = messageKey
        self.process = process
    }

    public func makeAsyncIterator() -> Iterator {
        Iterator(base: base.makeAsyncIterator(), sequence: self)
    }

    /// The iterator of ``AsyncTracedSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        var base: Base.AsyncIterator
        let sequence: AsyncTracedSequence

        init(base: Base.AsyncIterator, sequence: AsyncTracedSequence) {
            self.base = base
            self.sequence = sequence
        }

        public mutating func next() async throws -> Output? {
            try await next(isolation: nil)
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async throws -> Output? {
            guard let message = try await base.next(isolation: actor) else { return nil }
            let record = message.consumedRecord
            let fields = MessagingSpanAttributes.RecordFields(
                topic: record.topic, partition: record.partition, offset: record.offset)
            let parent = message.extractServiceContext(into: ServiceContext.current ?? .topLevel)
            let sequence = self.sequence
            return try await withSpan(
                MessagingSpanAttributes.spanName(topic: fields.topic), context: parent, ofKind: .consumer,
                isolation: actor
            ) {
                span in
                if span.isRecording {
                    MessagingSpanAttributes.set(
                        on: span, record: fields, consumerGroup: sequence.consumerGroup ?? message.consumerGroupId,
                        messageKey: sequence.messageKey?(message))
                }
                return try await sequence.process(message)
            }
        }
    }
}
