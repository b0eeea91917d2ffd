import StreamKit
import Tracing

extension AsyncSequence where Self: Sendable, Element: Collection & Sendable, Element.Element: KafkaConsumedMessage {
    /// Processes each batch of consumer messages (from `groupedWithin(count:duration:)`,
    /// `batch(max:seed:aggregate:)`, …) inside one consumer span, linked to the trace context
    /// each record's producer propagated. Emits what `process` returns. The default way to
    /// trace a busy stream: a span per batch, not per record (for that, `traced` the messages
    /// before grouping them).
    ///
    /// The span is a child of the task's current context, named `process <topic>` (`process`
    /// when the batch spans topics), of kind `.consumer`, with OpenTelemetry's messaging
    /// attributes: system, operation, `messaging.batch.message_count`, and the destination,
    /// partition and group when every record shares them. Records that carry no trace context
    /// add no link. It ends when `process` returns, recording the error when it throws.
    ///
    /// Back-pressure: one batch at a time; the next is pulled only when downstream asks for
    /// the next output. Cancellation and errors: `process` runs in the consuming task and
    /// sees its cancellation; an error from upstream or from `process` ends the sequence.
    ///
    /// - Parameters:
    ///   - consumerGroup: the group for `messaging.kafka.consumer.group`; by default the
    ///     messages' own (committable and transactional messages carry it, plain records don't).
    ///   - process: the processing of one batch.
    public func traced<Output: Sendable>(
        consumerGroup: String? = nil,
        _ process: @escaping @Sendable (Element) async throws -> Output
    ) -> AsyncTracedBatchSequence<Self, Output> {
        AsyncTracedBatchSequence(base: self, consumerGroup: consumerGroup, process: process)
    }
}

extension Source where Element: Collection, Element.Element: KafkaConsumedMessage {
    /// ``AsyncSequence/traced(consumerGroup:_:)``, keeping the materialized value (a consumer
    /// source's ``ConsumerControl``).
    public func traced<Output: Sendable>(
        consumerGroup: String? = nil,
        _ process: @escaping @Sendable (Element) async throws -> Output
    ) -> Source<AsyncTracedBatchSequence<Base, Output>, Materialized> {
        Source<AsyncTracedBatchSequence<Base, Output>, Materialized>(
            AsyncTracedBatchSequence(base: base, consumerGroup: consumerGroup, process: process),
            materialized: materialized)
    }
}

/// The sequence of ``AsyncSequence/traced(consumerGroup:_:)``: what `process` returns for
/// each batch, each computed inside a consumer span linked to its records' producers.
public struct AsyncTracedBatchSequence<Base: AsyncSequence & Sendable, Output: Sendable>: AsyncSequence, Sendable
where Base.Element: Collection & Sendable, Base.Element.Element: KafkaConsumedMessage {
    public typealias Element = Output
    public typealias Failure = any Error

    let base: Base
    let consumerGroup: String?
    let process: @Sendable (Base.Element) async throws -> Output

    init(base: Base, consumerGroup: String?, process: @escaping @Sendable (Base.Element) async throws -> Output) {
        self.base = base
        self.consumerGroup = consumerGroup
        self.process = process
    }

    public func makeAsyncIterator() -> Iterator {
        Iterator(base: base.makeAsyncIterator(), sequence: self)
    }

    /// The iterator of ``AsyncTracedBatchSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        var base: Base.AsyncIterator
        let sequence: AsyncTracedBatchSequence

        init(base: Base.AsyncIterator, sequence: AsyncTracedBatchSequence) {
            self.base = base
            self.sequence = sequence
        }

        public mutating func next() async throws -> Output? {
            try await next(isolation: nil)
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async throws -> Output? {
            guard let batch = try await base.next(isolation: actor) else { return nil }
            var fields = MessagingSpanAttributes.BatchFields()
            var group = sequence.consumerGroup
            for message in batch {
                let record = message.consumedRecord
                fields.add(topic: record.topic, partition: record.partition)
                if group == nil { group = message.consumerGroupId }
            }
            let sequence = self.sequence
            return try await withSpan(
                MessagingSpanAttributes.spanName(topic: fields.topic), ofKind: .consumer, isolation: actor
            ) {
                [fields, group] span in
                if span.isRecording {
                    MessagingSpanAttributes.set(on: span, batch: fields, consumerGroup: group)
                    for message in batch {
                        let producer = message.extractServiceContext()
                        if !producer.isEmpty { span.addLink(SpanLink(context: producer, attributes: [:])) }
                    }
                }
                return try await sequence.process(batch)
            }
        }
    }
}
