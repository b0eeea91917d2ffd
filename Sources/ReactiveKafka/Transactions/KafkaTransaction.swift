import Synchronization

/// The open transaction inside ``TransactionalProducer/transaction(isolation:_:)``:
/// what is sent through it is committed, or aborted, together.
///
/// Valid only while the closure runs; using it afterwards throws
/// ``KafkaError/Kind/illegalState``. Several tasks may send through it at once.
public final class KafkaTransaction<Key: Sendable, Value: Sendable>: Sendable {
    private let producer: TransactionalProducer<Key, Value>
    private let sequence: UInt64
    private let ended = Atomic<Bool>(false)

    init(producer: TransactionalProducer<Key, Value>, sequence: UInt64) {
        self.producer = producer
        self.sequence = sequence
    }

    /// Sends `record` as part of the transaction. Returns once librdkafka has
    /// queued it (suspending while its queue is full); the acknowledgement is
    /// awaited when the transaction commits, and a record that cannot be
    /// delivered makes the commit abort the whole transaction. The caller's trace context
    /// goes into the record's headers (see ``ProducerSettings/propagatesTraceContext``).
    /// - Throws: ``KafkaError/Kind/serialization`` if a serialiser throws,
    ///   ``KafkaError/Kind/deliveryFailed`` when librdkafka refuses the record at once
    ///   (e.g. an invalid topic), ``KafkaError/Kind/illegalState`` after the transaction ended.
    public func send(_ record: ProducerRecord<Key, Value>) async throws(KafkaError) {
        try checkOpen()
        try await producer.send(record, sequence: sequence)
    }

    /// Adds `offsets` (the next offset to read, per partition) of `groupMetadata`'s consumer
    /// group to the transaction (`send_offsets_to_transaction`): they are committed if, and
    /// only if, the transaction commits. The consume-transform-produce pattern of a
    /// hand-written consumer loop. Retriable failures are retried.
    /// - Throws: the typed error of the call (``KafkaError/Kind/transactionAborted`` when the
    ///   transaction can only be aborted: rethrow it), ``KafkaError/Kind/illegalState`` after the transaction ended.
    public func sendOffsets(_ offsets: [TopicPartition: Int64], groupMetadata: ConsumerGroupMetadata)
        async throws(KafkaError)
    {
        try checkOpen()
        try await producer.sendOffsets(offsets, group: groupMetadata)
    }

    func end() { ended.store(true, ordering: .releasing) }

    private func checkOpen() throws(KafkaError) {
        if ended.load(ordering: .acquiring) {
            throw KafkaError(
                .illegalState, "this transaction has already ended; send inside the closure given to transaction { }")
        }
    }
}
