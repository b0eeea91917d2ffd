import CRdKafka
import Foundation
import Synchronization

/// Records of a ``ProducerFlexiFlow`` run that the pump has published in the ring but not yet
/// handed to librdkafka: they are produced together with `rd_kafka_produce_batch`, one call
/// per partition, instead of one `rd_kafka_produceva` call each.
///
/// Why: a produce call parses its arguments, takes the topic's read lock, reads two clocks
/// and checks the producer's state; a batch call does that once per partition for all its
/// records. The pump's thread is the flow's critical path, and there that was ~90 ns of its
/// ~400 ns per record (profiled, 1M records of 100 B over 64 partitions).
///
/// A batch is produced once it holds 1,024 records or 1 MiB, or once its first record has
/// waited 200 µs while records kept coming, whichever comes first.
///
/// Only records librdkafka's batch call can express are collected: one record per message,
/// no headers, no timestamp of their own, all to one topic, either all with an explicit
/// partition or all without (then the partitioner places each, in order). Any other record
/// flushes the batch first, so per partition the order is the input order. Records for one
/// partition keep their order; the batch call per partition is given a fixed partition (with
/// per-record partitions, librdkafka's batch call does not free a record whose partition does
/// not exist, and its queue space stays taken).
///
/// Owned by the pump, except while it is parked (waiting for its upstream) with records
/// collected: then the engine's poll thread, which looks at collecting batches at least every
/// millisecond, claims the batch at the first look that finds it parked and produces them
/// (``flushIfParked(_:)``), so that collected records do not wait for an idle upstream. A Kafka
/// source that runs out of records inside the pump's pull wakes the poll thread for that look at
/// once (``UpstreamWait``): without it a record arriving alone waited up to a millisecond.
/// (It used to wait for a second look a millisecond later: 1–2 ms added to every record
/// of a slow stream, for no throughput measurably gained.) The hand-over is one atomic state: the pump
/// parks (release) and unparks (compare-and-swap), the poll thread claims with a
/// compare-and-swap; whoever owns the batch alone touches its fields. A pump that comes back
/// while the poll thread flushes does not spin: it suspends (`waiting`) and the poll thread
/// hands the batch straight back to it (`active`) and resumes it when the flush is done.
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
    /// The longest the first collected record waits for the rest of its batch while records keep
    /// coming (a backlog, a burst). The poll thread takes only a batch parked in a pull, so with
    /// a count alone a record could wait for 1,024 records' work: up to a millisecond at the
    /// at-least-once pipeline's pace, more behind a slow serialiser (`rkafka bench --scenario
    /// latency` at ~350,000 msgs/s: the connector's p50 and p99 over raw's each fell by ~0.2 ms).
    @inlinable static var maxHold: Duration { .microseconds(200) }
    /// Records between two looks at the clock while collecting.
    @inlinable static var holdCheckInterval: Int { 16 }

    /// Whether the batch is the pump's (`active`), waiting for the pump (`parked`), being
    /// produced by the poll thread (`flushing`), or being produced while the pump waits for
    /// it, suspended in ``unparkAfterFlush()`` (`waiting`).
    @inlinable static var active: Int { 0 }
    @inlinable static var parked: Int { 1 }
    @inlinable static var flushing: Int { 2 }
    @inlinable static var waiting: Int { 3 }
    @usableFromInline let state = Atomic<Int>(0)
    /// The pump's continuation while it waits for a flush: written by the pump before it moves
    /// `state` from `flushing` to `waiting` (release), taken by the poll thread after it saw
    /// `waiting` (acquire). Only one side touches it at a time, so the ordering on `state`
    /// is its only synchronisation.
    @exclusivity(unchecked) @usableFromInline var waiter: UnsafeContinuation<Bool, Never>?
    /// Whether records are collected, for the poll thread's choice of how long to sleep.
    @usableFromInline let collecting = Atomic<Bool>(false)

    @usableFromInline let receiver: UInt16
    /// The ring's token for a position (`ProducerFlowRing.token(position:index:)`).
    @usableFromInline let token: (Int) -> UInt64
    /// Reports a record librdkafka refused at once (the message fails).
    @usableFromInline let refused: (_ position: Int, _ code: rd_kafka_resp_err_t, _ partition: Int32?) -> Void

    // Unchecked (this field to `collectingSince`): only the batch's owner touches them, the pump while
    // `state` is active, the poll thread while flushing; the atomic hand-over orders the two.
    /// A collected record was refused: the run fails at its message, the pump stops pulling.
    @exclusivity(unchecked) @usableFromInline var refusedAny = false
    @exclusivity(unchecked) @usableFromInline var entries: [Entry] = []
    @exclusivity(unchecked) @usableFromInline var topic: OpaquePointer?
    @exclusivity(unchecked) @usableFromInline var explicitPartitions = false
    // Keys and values copied in (librdkafka copies them again, at the call).
    @exclusivity(unchecked) @usableFromInline var bytes: UnsafeMutableRawPointer
    @exclusivity(unchecked) @usableFromInline var bytesCapacity: Int
    @exclusivity(unchecked) @usableFromInline var bytesUsed = 0
    // Scratch space for the batch calls.
    @usableFromInline var messages: UnsafeMutablePointer<rd_kafka_message_t>
    @exclusivity(unchecked) @usableFromInline var order: [Int] = []
    @exclusivity(unchecked) @usableFromInline var keep: [Bool] = []
    @exclusivity(unchecked) @usableFromInline var starts: [Int] = []
    /// When the first of the collected records was added.
    @exclusivity(unchecked) @usableFromInline var collectingSince = ContinuousClock.now

    @usableFromInline
    init(
        receiver: UInt16, token: @escaping (Int) -> UInt64,
        refused: @escaping (Int, rd_kafka_resp_err_t, Int32?) -> Void
    ) {
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

    /// Whether the batch should be produced now: full, or its first record has waited
    /// ``maxHold`` (the clock is read once every ``holdCheckInterval`` records).
    @inlinable var isDue: Bool {
        let count = entries.count
        if count >= Self.maxRecords || bytesUsed >= Self.maxBytes { return true }
        return count % Self.holdCheckInterval == 0 && heldLongEnough()
    }

    @usableFromInline
    func heldLongEnough() -> Bool { ContinuousClock.now - collectingSince >= Self.maxHold }

    /// Collects the record published at `position`. Requires ``accepts(topic:explicitPartition:)``.
    @inlinable
    func add(
        position: Int, topic: OpaquePointer, partition: Int32?, key: borrowing SerializedBytes?,
        value: borrowing SerializedBytes?, engine: ProducerEngine
    ) {
        let (keyOffset, keyCount) = append(key)
        let (valueOffset, valueCount) = append(value)
        add(
            position: position, topic: topic, partition: partition, key: (keyOffset, keyCount),
            value: (valueOffset, valueCount), engine: engine)
    }

    /// Collects the record published at `position`, whose key and value are read in place.
    /// Requires ``accepts(topic:explicitPartition:)``.
    @inlinable
    func add(
        position: Int, topic: OpaquePointer, partition: Int32?, key: BytesInPlace, value: BytesInPlace,
        engine: ProducerEngine
    ) {
        let keyPart = key.count < 0 ? (0, -1) : append(UnsafeRawBufferPointer(start: key.start, count: key.count))
        let valuePart =
            value.count < 0 ? (0, -1) : append(UnsafeRawBufferPointer(start: value.start, count: value.count))
        add(position: position, topic: topic, partition: partition, key: keyPart, value: valuePart, engine: engine)
    }

    @inlinable
    func add(
        position: Int, topic: OpaquePointer, partition: Int32?, key: (offset: Int, count: Int),
        value: (offset: Int, count: Int), engine: ProducerEngine
    ) {
        if entries.isEmpty { startCollecting(engine) }
        self.topic = topic
        explicitPartitions = partition != nil
        entries.append(
            Entry(
                position: position, partition: partition ?? RD_KAFKA_PARTITION_UA,
                keyOffset: key.offset, keyCount: key.count, valueOffset: value.offset, valueCount: value.count))
    }

    @inlinable
    func append(_ part: borrowing SerializedBytes?) -> (offset: Int, count: Int) {
        switch part {
        case .none: return (0, -1)
        case .some(let serialized): return serialized.withUnsafeBytes { append($0) }
        }
    }

    /// Copies `source` in; where it was put.
    @inlinable
    func append(_ source: UnsafeRawBufferPointer) -> (offset: Int, count: Int) {
        reserve(source.count)
        let offset = bytesUsed
        if source.count > 0 { (bytes + offset).copyMemory(from: source.baseAddress!, byteCount: source.count) }
        bytesUsed += source.count
        return (offset, source.count)
    }

    /// The first record of a batch: the poll thread must look at the batch from now on.
    @usableFromInline
    func startCollecting(_ engine: ProducerEngine) {
        collectingSince = .now
        collecting.store(true, ordering: .sequentiallyConsistent)
        engine.batchStartedCollecting()
    }

    // MARK: Pump side

    /// The pump is about to wait for its upstream; until ``tryUnpark()`` the poll thread may produce
    /// the collected records. Only with records collected.
    @inlinable
    func park() {
        state.store(Self.parked, ordering: .releasing)
    }

    /// Whether the pump is parked with records collected (any thread; a hint: the pump may come back at once).
    var isParkedWithRecords: Bool {
        state.load(ordering: .acquiring) == Self.parked && collecting.load(ordering: .relaxed)
    }

    /// The pump is back: takes the batch back unless the poll thread is producing it, in which
    /// case the pump must call ``unparkAfterFlush()``. One compare-and-swap, no async call: the
    /// pump calls it once a message, so it stays a plain instruction sequence.
    @inlinable
    func tryUnpark() -> Bool {
        state.compareExchange(expected: Self.parked, desired: Self.active, ordering: .acquiringAndReleasing).exchanged
    }

    /// The pump is back while the poll thread may be producing the batch: suspends (no
    /// spinning, no blocking of the pump's thread) until the poll thread hands the batch back.
    @usableFromInline
    func unparkAfterFlush() async {
        while true {
            if state.compareExchange(expected: Self.parked, desired: Self.active, ordering: .acquiringAndReleasing)
                .exchanged
            {
                return
            }
            // True when the poll thread handed the batch back (``handBack()``).
            let handedBack = await withUnsafeContinuation { (continuation: UnsafeContinuation<Bool, Never>) in
                waiter = continuation
                if !state.compareExchange(
                    expected: Self.flushing, desired: Self.waiting, ordering: .acquiringAndReleasing
                ).exchanged {
                    // The flush ended in between (the batch is parked again): take it back above.
                    waiter = nil
                    continuation.resume(returning: false)
                }
            }
            if handedBack { return }
        }
    }

    // MARK: Poll-thread side

    /// Produces the collected records if the pump is parked; returns whether records are
    /// still collected (the poll thread then looks again within a millisecond).
    @usableFromInline
    func flushIfParked(_ engine: ProducerEngine) -> Bool {
        guard collecting.load(ordering: .sequentiallyConsistent) else { return false }
        guard state.compareExchange(expected: Self.parked, desired: Self.flushing, ordering: .acquiring).exchanged
        else {
            return true
        }
        let flushed: Flushed
        do {
            flushed = try flush(engine)
        } catch {
            // The engine was closed or failed: these records can never be produced, and the
            // run learns it through its receiver and the pump's next call.
            discard()
            flushed = .all
        }
        if !state.compareExchange(expected: Self.flushing, desired: Self.parked, ordering: .releasing).exchanged {
            // The pump came back meanwhile and waits (`waiting`): the batch is its own again.
            handBack()
        }
        return flushed == .queueFull
    }

    /// The flush is done and the pump waits for it: hands the batch back and resumes the pump.
    @usableFromInline
    func handBack() {
        // Acquire: the pump wrote `waiter` before it moved `state` to `waiting`.
        precondition(
            state.load(ordering: .acquiring) == Self.waiting, "a flushed batch is either still flushing or awaited")
        let pump = waiter
        waiter = nil
        state.store(Self.active, ordering: .releasing)
        pump?.resume(returning: true)
    }

    /// Forgets the collected records (their engine can no longer produce anything).
    @usableFromInline
    func discard() {
        entries.removeAll(keepingCapacity: true)
        bytesUsed = 0
        topic = nil
        collecting.store(false, ordering: .relaxed)
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

    /// Fills `order` with the entries' indices grouped by partition, each partition's in
    /// their order (a counting sort: partitions are small numbers).
    @usableFromInline
    func groupByPartition() {
        order.removeAll(keepingCapacity: true)
        var highest: Int32 = 0
        if explicitPartitions {
            for entry in entries { highest = max(highest, entry.partition) }
        }
        guard explicitPartitions, highest > 0 else {
            order.append(contentsOf: entries.indices)
            return
        }
        guard highest < 1 << 16 else {
            order.append(contentsOf: entries.indices)
            order.sort { a, b in
                let (pa, pb) = (entries[a].partition, entries[b].partition)
                return pa != pb ? pa < pb : a < b
            }
            return
        }
        starts.removeAll(keepingCapacity: true)
        starts.append(contentsOf: repeatElement(0, count: Int(highest) + 2))
        for entry in entries { starts[Int(entry.partition) + 1] += 1 }
        for p in 0...Int(highest) { starts[p + 1] += starts[p] }
        order.append(contentsOf: repeatElement(0, count: entries.count))
        for (index, entry) in entries.enumerated() {
            order[starts[Int(entry.partition)]] = index
            starts[Int(entry.partition)] += 1
        }
    }

    /// Hands the collected records to librdkafka, one batch call per partition (records of a
    /// partition in their order). Records refused at once are reported through `refused`;
    /// those librdkafka had no room for stay collected (``Flushed/queueFull``).
    /// - Throws: the engine's ``KafkaError/Kind/shutDown`` or ``KafkaError/Kind/fatal`` error.
    @usableFromInline
    func flush(_ engine: ProducerEngine) throws(KafkaError) -> Flushed {
        guard let topic, !entries.isEmpty else { return .all }
        // Stable grouping by partition (a partition's records keep their order).
        groupByPartition()
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
        collecting.store(false, ordering: .relaxed)
        return .all
    }
}
