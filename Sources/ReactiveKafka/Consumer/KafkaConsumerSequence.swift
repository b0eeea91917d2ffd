import CRdKafka
import Synchronization

/// The records of a Kafka consumer as an `AsyncSequence` of `Element`
/// (`ConsumerRecord` or `CommittableMessage`).
///
/// Back-pressure: records are taken from the consumer engine in batches only
/// when the iterator has emitted the previous batch, so a slow consumer lets
/// the engine's buffer fill up, which pauses the partitions.
///
/// Cancellation: the task iterating is cancelled → `next()` throws
/// `CancellationError`. The stream's end is the consumer's end: when it ends
/// without ``ConsumerControl/stop()`` (a failure, cancellation, `break`,
/// `take(n)`, the iterator dropped), its consumer completes and leaves its
/// group as soon as the committers fed by it have flushed (commit by hand
/// before the stream ends). After `stop()` it stays, so that records still in
/// flight can be committed, until ``ConsumerControl/shutdown()`` (the drain
/// does it) or `stopTimeout`. A source can be iterated once; a second
/// iteration fails with an `illegalState` error.
public struct KafkaConsumerSequence<Element: Sendable>: AsyncSequence, Sendable {
    /// The error the sequence may end with.
    public typealias Failure = any Error
    let control: ConsumerControl
    @usableFromInline let makeElement: @Sendable (Int, LentChunk) throws -> Element
    /// The whole consumer, or one partition's sub-stream (assigned at `since`).
    let reader: ConsumerEngine.Reader
    let since: UInt64
    /// For a source sharing a consumer: the partitions it adds when it starts.
    let attaching: Subscription?

    init(
        control: ConsumerControl, reader: ConsumerEngine.Reader = .all, since: UInt64 = 0,
        attaching: Subscription? = nil,
        makeElement: @escaping @Sendable (Int, LentChunk) throws -> Element
    ) {
        self.control = control
        self.reader = reader
        self.since = since
        self.attaching = attaching
        self.makeElement = makeElement
    }

    /// Makes the iterator that produces this sequence's elements.
    public func makeAsyncIterator() -> Iterator {
        Iterator(sequence: self)
    }

    /// Emits the records of the batches it takes from the consumer engine, in order.
    ///
    /// The per-record path (the next record of the batch in hand) is inlinable, so it is
    /// compiled into the stream that reads it, specialised for its element type: a record
    /// then costs no async frame, no generic dispatch and no type-metadata lookup. Taking
    /// the next batch (once per batch) is the out-of-line `nextBatch()`.
    public struct Iterator: AsyncIteratorProtocol {
        /// What to read and how to make elements.
        @usableFromInline let sequence: KafkaConsumerSequence
        @usableFromInline var engine: ConsumerEngine?
        /// Holds the consumer while this stream runs; dropped when it ends (see ``ConsumerEngineLease``).
        private var lease: ConsumerEngineLease?
        private var chunks: [RecordChunk] = []
        private var chunkIndex = 0
        /// The chunk being emitted (`chunks[chunkIndex]`), held apart so that emitting a
        /// record does not copy it (a batch retain and a topic retain per record).
        @usableFromInline var current: RecordChunk?
        @usableFromInline var messageIndex = 0
        /// Past the current chunk's last record; 0 when there is none (or the stream finished).
        @usableFromInline var messageEnd = 0
        /// The revocation epoch the batch in hand was taken at.
        @usableFromInline var epoch: UInt64 = 0
        private var finished = false

        init(sequence: KafkaConsumerSequence) { self.sequence = sequence }

        /// The next element, or `nil` once the sequence has ended.
        @inlinable public mutating func next() async throws -> Element? {
            if let element = try nextInBatch() { return element }
            return try await nextBatch()
        }

        /// The next element, or `nil` once the sequence has ended.
        @inlinable public mutating func next(isolation actor: isolated (any Actor)?) async throws(any Error) -> Element?
        {
            if let element = try nextInBatch() { return element }
            return try await nextBatch()
        }

        /// The next record of the batch in hand, if there is one and no rebalance (or
        /// rewind) happened since it was taken; nil sends the caller to ``nextBatch()``.
        @inlinable @inline(__always) mutating func nextInBatch() throws -> Element? {
            // unsafelyUnwrapped: `engine` is set before the first batch, and `current` was just checked.
            guard messageIndex < messageEnd, current != nil,
                engine.unsafelyUnwrapped.revocationEpoch.load(ordering: .acquiring) == epoch
            else { return nil }
            let chunk = LentChunk(current.unsafelyUnwrapped)
            let index = messageIndex
            messageIndex += 1
            do {
                return try sequence.makeElement(index, chunk)
            } catch {
                fail()
                throw error
            }
        }

        /// Ends the stream after a record failed to become an element.
        @usableFromInline mutating func fail() {
            end()
        }

        /// The stream ended: nothing more is emitted, and the consumer is let go.
        private mutating func end() {
            finished = true
            chunks = []
            _ = select(0)
            lease = nil
        }

        /// Emits the next record once the batch in hand is used up or stale: drops what a
        /// rebalance revoked, moves to the next chunk, or waits for the next batch.
        @usableFromInline nonisolated(nonsending) mutating func nextBatch() async throws -> Element? {
            if finished { return nil }
            if engine == nil {
                do {
                    let started: ConsumerEngine?
                    if case .partition = sequence.reader {
                        started = try sequence.control.subStreamEngine()
                    } else {
                        started = try sequence.control.claimEngine()
                    }
                    // Stopped before it started, or already closing: complete without reading.
                    guard let started, let lease = ConsumerEngineLease(started, reader: sequence.reader) else {
                        end()
                        return nil
                    }
                    self.lease = lease
                    engine = started
                    if let attaching = sequence.attaching, case .subset(let id) = sequence.reader {
                        try attaching.validate()
                        try await started.withConsumer { _ throws(KafkaError) in try started.attach(id, attaching) }
                    }
                } catch {
                    end()
                    throw error.asCancellation
                }
            }
            guard let engine else {
                end()
                return nil
            }
            while true {
                if messageIndex < messageEnd, current != nil {
                    if engine.revocationEpoch.load(ordering: .acquiring) != epoch {
                        dropRevoked(engine)
                        continue
                    }
                    if let element = try nextInBatch() { return element }
                }
                if current != nil {
                    chunkIndex += 1
                    if select(chunkIndex) { continue }
                }
                chunks = []
                current = nil
                do {
                    guard let delivery = try await engine.nextDelivery(for: sequence.reader, since: sequence.since)
                    else {
                        end()
                        return nil
                    }
                    chunks = delivery.chunks
                    epoch = delivery.epoch
                    _ = select(0)
                } catch {
                    end()
                    throw error
                }
            }
        }

        /// Makes `chunks[index]` the current chunk; false (and no current chunk) past the end.
        private mutating func select(_ index: Int) -> Bool {
            chunkIndex = index
            guard index < chunks.count else {
                current = nil
                messageIndex = 0
                messageEnd = 0
                return false
            }
            let chunk = chunks[index]
            current = chunk
            messageIndex = chunk.range.lowerBound
            messageEnd = chunk.range.upperBound
            return true
        }

        /// A rebalance (or rewind) happened since this batch was taken: keep
        /// only records of partitions still valid, and tell the engine where
        /// emission stopped for the others (a revoke may be waiting to see
        /// exactly those records committed).
        private mutating func dropRevoked(_ engine: ConsumerEngine) {
            let taken = epoch
            epoch = engine.revocationEpoch.load(ordering: .acquiring)
            var verdicts: [TopicPartition: Bool] = [:]
            var firstUnemitted: [TopicPartition: Int64] = [:]
            var remaining: [RecordChunk] = []
            for (i, chunk) in chunks.enumerated() where i >= chunkIndex {
                let start = i == chunkIndex && current != nil ? messageIndex : chunk.range.lowerBound
                guard start < chunk.range.upperBound else { continue }
                let p = chunk.topicPartition
                let keep = verdicts[p] ?? engine.keeps(p, takenAt: taken)
                verdicts[p] = keep
                if keep {
                    remaining.append(
                        RecordChunk(
                            batch: chunk.batch, range: start..<chunk.range.upperBound, partition: chunk.partition,
                            byteCount: chunk.byteCount, lastTimestamp: chunk.lastTimestamp))
                } else if firstUnemitted[p] == nil {
                    firstUnemitted[p] = chunk.batch.messages[start]!.pointee.offset
                }
            }
            chunks = remaining
            _ = select(0)
            engine.readerDropped(
                sequence.reader, firstUnemitted: firstUnemitted, stillHolding: Set(remaining.map(\.topicPartition)))
        }
    }
}

/// Reads a librdkafka message into a `ConsumerRecord`, deserialising key and
/// value. Key and value bytes are views into the fetched batch (no copy).
enum RecordReader {
    static func record<K, V>(
        _ index: Int, _ chunk: LentChunk,
        key keyDeserializer: Deserializer<K>, value valueDeserializer: Deserializer<V>
    ) throws(KafkaError) -> ConsumerRecord<K, V> {
        // unsafelyUnwrapped: a batch's first `count` messages are set at init and never cleared.
        let message = chunk.batch.messages[index].unsafelyUnwrapped
        let m = message.pointee
        let keyBytes = m.key.map { KafkaBytes(owner: chunk.batch, pointer: UnsafeRawPointer($0), count: m.key_len) }
        let valueBytes = m.payload.map { KafkaBytes(owner: chunk.batch, pointer: UnsafeRawPointer($0), count: m.len) }
        let key = try part("key", consume keyBytes, keyDeserializer, chunk, m.offset)
        let value = try part("value", consume valueBytes, valueDeserializer, chunk, m.offset)
        var timestampType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let ms = rd_kafka_message_timestamp(message, &timestampType)
        let timestamp: KafkaTimestamp? =
            switch timestampType {
            case RD_KAFKA_TIMESTAMP_CREATE_TIME: KafkaTimestamp(milliseconds: ms, kind: .createTime)
            case RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME: KafkaTimestamp(milliseconds: ms, kind: .logAppendTime)
            default: nil
            }
        return ConsumerRecord(
            partition: m.partition, offset: m.offset, timestamp: timestamp, key: key, value: value,
            origin: .fetched(chunk.batch, index: index))
    }

    /// A key or value from its fetched bytes: moved on as they are for ``Deserializer/bytes``
    /// and ``Deserializer/optionalBytes`` (no call, no retain), else through the deserialiser.
    @inline(__always)
    private static func part<T>(
        _ name: String, _ bytes: consuming KafkaBytes?, _ deserializer: Deserializer<T>, _ chunk: LentChunk,
        _ offset: Int64
    ) throws(KafkaError) -> T {
        // `as!` cannot fail: `bytesAsIs` is set only where the type is `KafkaBytes` or `KafkaBytes?`
        // (and where this is specialised for them, the cast is a move).
        switch deserializer.bytesAsIs {
        case .empty?: return ((consume bytes) ?? KafkaBytes()) as! T
        case .null?: return (consume bytes) as! T
        case nil:
            do { return try deserializer.deserialize(bytes) } catch { throw failure(name, chunk, offset, error) }
        }
    }

    private static func failure(_ part: String, _ chunk: LentChunk, _ offset: Int64, _ error: any Error) -> KafkaError {
        KafkaError(
            .deserialization,
            "could not deserialise the \(part) of the record at topic \(chunk.topicPartition.topic) partition \(chunk.topicPartition.partition) offset \(offset): \(error). "
                + "The record was not emitted and not committed; fix the deserialiser, or skip the record by committing offset \(offset + 1)"
        )
    }
}
