import CRdKafka

/// Records of a ``ProducerFlexiFlow`` run that the pump has published in the ring but not yet
/// handed to librdkafka: they are produced together with `rd_kafka_produce_batch`, one call
/// per partition, instead of one `rd_kafka_produceva` call each.
///
/// Why: a produce call parses its arguments, takes the topic's read lock, reads two clocks
/// and checks the producer's state; a batch call does that once per partition for all its
/// records. The pump's thread is the flow's critical path, and there that was ~90 ns of its
/// ~400 ns per record (profiled, 1M records of 100 B over 64 partitions).
///
/// Only records librdkafka's batch call can express are collected: one record per message,
/// no headers, no timestamp of their own, all to one topic, either all with an explicit
/// partition or all without (then the partitioner places each, in order). Any other record
/// flushes the batch first, so per partition the order is the input order. Records for one
/// partition keep their order; the batch call per partition is given a fixed partition (with
/// per-record partitions, librdkafka's batch call does not free a record whose partition does
/// not exist, and its queue space stays taken).
///
/// Used only on the pump's executor thread (``ProducerPumpExecutor``): by the pump while it
/// runs and by the executor while the pump is suspended, never at the same time.
@usableFromInline
final class ProducerFlowBatch: @unchecked Sendable {
    @usableFromInline
    struct Entry {
        @usableFromInline var position: Int
        /// The record's partition; `RD_KAFKA_PARTITION_UA` for the partitioner.
        @usableFromInline var partition: Int32
        @usableFromInline var keyOffset: Int
        /// -1: no key (null).
        @usableFromInline var keyCount: Int
        @usableFromInline var valueOffset: Int
        /// -1: no value (null).
        @usableFromInline var valueCount: Int

        @inlinable
        init(position: Int, partition: Int32, keyOffset: Int, keyCount: Int, valueOffset: Int, valueCount: Int) {
            self.position = position
            self.partition = partition
            self.keyOffset = keyOffset
            self.keyCount = keyCount
            self.valueOffset = valueOffset
            self.valueCount = valueCount
        }
    }

    /// What a flush did.
    @usableFromInline
    enum Flushed {
        /// Every collected record was handed to librdkafka (or refused, and reported).
        case all
        /// librdkafka's queue is full: the records left are still collected.
        case queueFull
    }

    /// The most records collected before they are produced.
    @inlinable static var maxRecords: Int { 1024 }
    /// The most key and value bytes collected before they are produced.
    @inlinable static var maxBytes: Int { 1 << 20 }

    @usableFromInline let receiver: UInt16
    /// The ring's token for a position (`ProducerFlowRing.token(position:index:)`).
    @usableFromInline let token: (Int) -> UInt64
    /// Reports a record librdkafka refused at once (the message fails).
    @usableFromInline let refused: (_ position: Int, _ code: rd_kafka_resp_err_t, _ partition: Int32?) -> Void

    /// A collected record was refused: the run fails at its message, the pump stops pulling.
    @usableFromInline var refusedAny = false
    @usableFromInline var entries: [Entry] = []
    @usableFromInline var topic: OpaquePointer?
    @usableFromInline var explicitPartitions = false
    // Keys and values copied in (librdkafka copies them again, at the call).
    @usableFromInline var bytes: UnsafeMutableRawPointer
    @usableFromInline var bytesCapacity: Int
    @usableFromInline var bytesUsed = 0
    // Scratch space for the batch calls.
    @usableFromInline var messages: UnsafeMutablePointer<rd_kafka_message_t>
    @usableFromInline var order: [Int] = []
    @usableFromInline var keep: [Bool] = []

    @usableFromInline
    init(receiver: UInt16, token: @escaping (Int) -> UInt64, refused: @escaping (Int, rd_kafka_resp_err_t, Int32?) -> Void) {
        self.receiver = receiver
        self.token = token
        self.refused = refused
        bytesCapacity = 64 * 1024
        bytes = .allocate(byteCount: bytesCapacity, alignment: 16)
        messages = .allocate(capacity: Self.maxRecords)
        messages.initialize(repeating: rd_kafka_message_t(), count: Self.maxRecords)
        entries.reserveCapacity(Self.maxRecords)
        order.reserveCapacity(Self.maxRecords)
        keep.reserveCapacity(Self.maxRecords)
    }

    deinit {
        bytes.deallocate()
        messages.deallocate()
    }

    @inlinable var isEmpty: Bool { entries.isEmpty }

    /// Whether a record for `topic` with (or without) an explicit partition may join the
    /// collected ones; if not, they must be flushed first.
    @inlinable
    func accepts(topic: OpaquePointer, explicitPartition: Bool) -> Bool {
        entries.isEmpty || (self.topic == topic && explicitPartitions == explicitPartition)
    }

    /// Whether the batch should be produced now.
    @inlinable var isFull: Bool { entries.count >= Self.maxRecords || bytesUsed >= Self.maxBytes }

    /// Collects the record published at `position`. Requires ``accepts(topic:explicitPartition:)``.
    @inlinable
    func add(position: Int, topic: OpaquePointer, partition: Int32?, key: borrowing SerializedBytes?, value: borrowing SerializedBytes?) {
        self.topic = topic
        explicitPartitions = partition != nil
        let (keyOffset, keyCount) = append(key)
        let (valueOffset, valueCount) = append(value)
        entries.append(Entry(
            position: position, partition: partition ?? RD_KAFKA_PARTITION_UA,
            keyOffset: keyOffset, keyCount: keyCount, valueOffset: valueOffset, valueCount: valueCount))
    }

    @inlinable
    func append(_ part: borrowing SerializedBytes?) -> (offset: Int, count: Int) {
        switch part {
        case .none: return (0, -1)
        case .some(let serialized):
            return serialized.withUnsafeBytes { source in
                reserve(source.count)
                let offset = bytesUsed
                if source.count > 0 { (bytes + offset).copyMemory(from: source.baseAddress!, byteCount: source.count) }
                bytesUsed += source.count
                return (offset, source.count)
            }
        }
    }

    @usableFromInline
    func reserve(_ count: Int) {
        guard bytesUsed + count > bytesCapacity else { return }
        var capacity = bytesCapacity * 2
        while capacity < bytesUsed + count { capacity *= 2 }
        let bigger = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        bigger.copyMemory(from: bytes, byteCount: bytesUsed)
        bytes.deallocate()
        bytes = bigger
        bytesCapacity = capacity
    }

    /// Hands the collected records to librdkafka, one batch call per partition (records of a
    /// partition in their order). Records refused at once are reported through `refused`;
    /// those librdkafka had no room for stay collected (``Flushed/queueFull``).
    /// - Throws: the engine's ``KafkaError/Kind/shutDown`` or ``KafkaError/Kind/fatal`` error.
    @usableFromInline
    func flush(_ engine: ProducerEngine) throws(KafkaError) -> Flushed {
        guard let topic, !entries.isEmpty else { return .all }
        // Stable grouping by partition (a partition's records keep their order).
        order.removeAll(keepingCapacity: true)
        order.append(contentsOf: entries.indices)
        if explicitPartitions {
            order.sort { a, b in
                let (pa, pb) = (entries[a].partition, entries[b].partition)
                return pa != pb ? pa < pb : a < b
            }
        }
        for (slot, index) in order.enumerated() {
            let entry = entries[index]
            var message = rd_kafka_message_t()
            message.partition = entry.partition
            if entry.valueCount >= 0 {
                message.payload = bytes + entry.valueOffset
                message.len = entry.valueCount
            }
            if entry.keyCount >= 0 {
                message.key = UnsafeMutableRawPointer(bytes + entry.keyOffset)
                message.key_len = entry.keyCount
            }
            message._private = ProducerOpaque(receiver: receiver, token: token(entry.position)).pointer
            messages[slot] = message
        }
        keep.removeAll(keepingCapacity: true)
        keep.append(contentsOf: repeatElement(false, count: entries.count))
        var queueFull = false
        var start = 0
        while start < order.count {
            let partition = messages[start].partition
            var end = start + 1
            if explicitPartitions {
                while end < order.count, messages[end].partition == partition { end += 1 }
            } else {
                end = order.count
            }
            if queueFull {
                // librdkafka had no room for an earlier group: keep the rest as they are.
                for slot in start..<end { keep[order[slot]] = true }
            } else {
                let accepted = try engine.tryProduceBatch(
                    rkt: topic, partition: explicitPartitions ? partition : RD_KAFKA_PARTITION_UA,
                    messages: messages + start, count: end - start)
                if accepted < end - start {
                    for slot in start..<end {
                        let code = messages[slot].err
                        if code == RD_KAFKA_RESP_ERR_NO_ERROR { continue }
                        if code == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                            keep[order[slot]] = true
                            queueFull = true
                            continue
                        }
                        let entry = entries[order[slot]]
                        refusedAny = true
                        refused(entry.position, code, explicitPartitions ? entry.partition : nil)
                    }
                }
            }
            start = end
        }
        if queueFull {
            var kept = 0
            for index in entries.indices where keep[index] {
                entries[kept] = entries[index]
                kept += 1
            }
            entries.removeLast(entries.count - kept)
            return .queueFull
        }
        entries.removeAll(keepingCapacity: true)
        bytesUsed = 0
        self.topic = nil
        return .all
    }

    /// Flushes the batch while the pump is suspended (``ProducerPumpExecutor/whenIdle``). When
    /// librdkafka's queue is full, it waits for space in a task on the pump's executor and tries
    /// again, so collected records never wait for the pump (whose upstream may be idle).
    @usableFromInline
    final class Parked: @unchecked Sendable {
        @usableFromInline let batch: ProducerFlowBatch
        @usableFromInline let engine: ProducerEngine
        @usableFromInline let executor: ProducerPumpExecutor
        @usableFromInline var retrying = false
        @usableFromInline var closed = false

        @usableFromInline
        init(batch: ProducerFlowBatch, engine: ProducerEngine, executor: ProducerPumpExecutor) {
            self.batch = batch
            self.engine = engine
            self.executor = executor
        }

        /// On the executor's thread, while the pump is suspended.
        @usableFromInline
        func flush() {
            guard !closed, !retrying, !batch.isEmpty else { return }
            let generation = engine.spaceGenerationNow
            // A shut-down or failed engine reaches the run through its receiver and the pump's next call.
            guard (try? batch.flush(engine)) == .queueFull else { return }
            retrying = true
            executor.hold()
            Task(executorPreference: executor) {
                await self.engine.waitForSpace(since: generation, cancellable: false)
                self.retrying = false
                self.executor.release()
                self.flush()
            }
        }

        /// The pump ended: nothing is flushed any more.
        @usableFromInline
        func close() { closed = true }
    }
}
