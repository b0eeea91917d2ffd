import CRdKafka
import Synchronization

/// The messages of one ``ProducerFlexiFlow`` run that are in flight, in input
/// order: a fixed ring written by exactly one pump, completed by the engine's
/// poll thread and read by exactly one downstream, without locks.
///
/// Why lock-free: the pump registers every message and the poll thread
/// completes thousands per delivery batch; with one shared lock the pump
/// blocked in the kernel behind the poll thread's batches (profiled).
///
/// Two bounds: at most `parallelism` messages are unacknowledged (sent, no
/// delivery report yet), and at most `lookAhead` (2 × parallelism) are pulled
/// and not yet given back by the downstream. Freeing
/// capacity on acknowledgement, not on in-order emission, keeps librdkafka fed
/// while one partition lags behind the others: measured on the embedded
/// cluster, a window freed only in order stalls for ~45 ms a round and runs at
/// a tenth of the speed.
///
/// Protocol (each position is a slot `position & mask`):
/// - the pump ``publish(_:recordCount:)``es at its tail only while
///   ``pumpHasCapacity`` (both bounds hold, so the slot is free), before
///   producing the message's records;
/// - the poll thread ``deliver(_:)``s reports: it writes the record's outcome,
///   then decrements the slot's remaining count (release), so a slot whose
///   count reads 0 (acquire) has every outcome visible;
/// - the downstream ``pop(into:)``s complete slots from its head, moving the
///   messages out, and ``giveBack()``s capacity when its consumer asks for more.
///
/// No I/O and no continuations: the waiting and waking is ``ProducerFlowStorage``'s.
@usableFromInline
final class ProducerFlowRing<Key: Sendable, Value: Sendable, PassThrough: Sendable>: @unchecked Sendable {
    @usableFromInline typealias Message = ProducerMessage<Key, Value, PassThrough>
    @usableFromInline typealias Result = ProducerResult<Key, Value, PassThrough>

    /// Bits of a record's token: 28 bits of position (wrapping), 20 of record index.
    @inlinable
    static var positionBits: UInt64 { 28 }
    @inlinable
    static var indexBits: UInt64 { 20 }
    /// The most records one `multi` message may hold.
    @inlinable
    static var maxRecordsPerMessage: Int { 1 << Int(indexBits) }
    /// The largest effective parallelism (bounds the ring's memory).
    @inlinable
    static var maxParallelism: Int { 1 << 20 }
    @inlinable
    static var failedBit: Int { 1 << 62 }

    /// Where one record was written.
    @usableFromInline
    struct Outcome {
        @usableFromInline var partition: Int32
        @usableFromInline var offset: Int64
        @usableFromInline var timestamp: KafkaTimestamp?

        @inlinable
        init(partition: Int32 = -1, offset: Int64 = -1, timestamp: KafkaTimestamp? = nil) {
            self.partition = partition
            self.offset = offset
            self.timestamp = timestamp
        }
    }

    /// Outcomes of records 1… of a multi message (record 0 uses the slot's own).
    @usableFromInline
    final class MultiOutcomes: @unchecked Sendable {
        @usableFromInline let outcomes: UnsafeMutableBufferPointer<Outcome>
        @inlinable
        init(count: Int) {
            outcomes = .allocate(capacity: count)
            outcomes.initialize(repeating: Outcome())
        }
        deinit { outcomes.deallocate() }
    }

    @usableFromInline let parallelism: Int
    /// The most messages pulled and not yet given back (acknowledged ones waiting for an earlier one count).
    @usableFromInline let lookAhead: Int
    /// Slots in the ring (a power of two ≥ `lookAhead`).
    @usableFromInline let capacity: Int
    @usableFromInline let mask: Int
    @usableFromInline let messages: UnsafeMutablePointer<Message>
    @usableFromInline let outcomes: UnsafeMutablePointer<Outcome>
    @usableFromInline let multis: UnsafeMutablePointer<MultiOutcomes?>
    // Remaining records per slot; `failedBit` once a record of the slot failed.
    @usableFromInline let remaining: UnsafeMutablePointer<Atomic<Int>>
    @usableFromInline let failures = Mutex<[Int: KafkaError]>([:])

    /// The counters, each group on cache lines of its own (see ``Counters``).
    @usableFromInline let counters: Counters

    /// The next position the pump publishes at. Owned by the pump.
    @inlinable var tail: Int {
        get { counters.tail.pointee }
        set { counters.tail.pointee = newValue }
    }
    /// The next position the downstream pops. Owned by the downstream.
    @inlinable var head: Int {
        get { counters.head.pointee }
        set { counters.head.pointee = newValue }
    }

    /// The ring's positions, grouped by the thread that writes them, each group on its own
    /// 128-byte block (a cache line and its prefetch pair). As stored properties of the ring
    /// they shared a line with each other and with the slot pointers: the pump's store to
    /// `tail`/`published` per message made the downstream and the poll thread miss on every
    /// read of the ring, and the downstream's `head` write per result did the same to the pump.
    @usableFromInline
    struct Counters: @unchecked Sendable {
        @inlinable static var block: Int { 128 }
        @usableFromInline let base: UnsafeMutableRawPointer
        // Pump block: written per message by the pump.
        @usableFromInline let published: UnsafeMutablePointer<Atomic<Int>>
        @usableFromInline let tail: UnsafeMutablePointer<Int>
        // Downstream block: written per pop / give-back by the downstream.
        @usableFromInline let released: UnsafeMutablePointer<Atomic<Int>>
        @usableFromInline let headMirror: UnsafeMutablePointer<Atomic<Int>>
        @usableFromInline let head: UnsafeMutablePointer<Int>
        // Poll-thread block: written per delivery batch.
        @usableFromInline let acknowledged: UnsafeMutablePointer<Atomic<Int>>

        @usableFromInline
        init() {
            let block = Self.block
            let base = UnsafeMutableRawPointer.allocate(byteCount: 3 * block, alignment: block)
            self.base = base
            published = Self.atomic(base + 0)
            tail = Self.plain(base + 8)
            released = Self.atomic(base + block)
            headMirror = Self.atomic(base + block + 8)
            head = Self.plain(base + block + 16)
            acknowledged = Self.atomic(base + 2 * block)
        }

        private static func atomic(_ address: UnsafeMutableRawPointer) -> UnsafeMutablePointer<Atomic<Int>> {
            let pointer = address.bindMemory(to: Atomic<Int>.self, capacity: 1)
            pointer.initialize(to: Atomic(0))
            return pointer
        }

        private static func plain(_ address: UnsafeMutableRawPointer) -> UnsafeMutablePointer<Int> {
            let pointer = address.bindMemory(to: Int.self, capacity: 1)
            pointer.initialize(to: 0)
            return pointer
        }

        @usableFromInline
        func deallocate() {
            published.deinitialize(count: 1)
            released.deinitialize(count: 1)
            headMirror.deinitialize(count: 1)
            acknowledged.deinitialize(count: 1)
            base.deallocate()
        }
    }

    @usableFromInline
    init(parallelism: Int) {
        self.parallelism = min(max(1, parallelism), Self.maxParallelism)
        self.lookAhead = 2 * self.parallelism
        var capacity = 1
        while capacity < lookAhead { capacity <<= 1 }
        self.capacity = capacity
        self.mask = capacity - 1
        messages = .allocate(capacity: capacity)
        outcomes = .allocate(capacity: capacity)
        outcomes.initialize(repeating: Outcome(), count: capacity)
        multis = .allocate(capacity: capacity)
        multis.initialize(repeating: nil, count: capacity)
        remaining = .allocate(capacity: capacity)
        for i in 0..<capacity { (remaining + i).initialize(to: Atomic(0)) }
        counters = Counters()
    }

    deinit {
        for position in head..<tail { (messages + (position & mask)).deinitialize(count: 1) }
        messages.deallocate()
        outcomes.deallocate()
        multis.deinitialize(count: capacity)
        multis.deallocate()
        remaining.deinitialize(count: capacity)
        remaining.deallocate()
        counters.deallocate()
    }

    /// The token librdkafka carries for record `index` of the message at `position`.
    @inlinable
    static func token(position: Int, index: Int) -> UInt64 {
        (UInt64(truncatingIfNeeded: position) & ((1 << positionBits) - 1)) << indexBits | UInt64(index)
    }

    // MARK: Pump side

    /// Whether the pump may publish another message.
    @inlinable
    var pumpHasCapacity: Bool {
        tail - counters.acknowledged.pointee.load(ordering: .sequentiallyConsistent) < parallelism
            && tail - counters.released.pointee.load(ordering: .sequentiallyConsistent) < lookAhead
    }

    /// Whether at least `amount` more messages could be published (from any thread).
    @inlinable
    func hasFreeCapacity(_ amount: Int) -> Bool {
        let end = counters.published.pointee.load(ordering: .sequentiallyConsistent)
        return parallelism - (end - counters.acknowledged.pointee.load(ordering: .sequentiallyConsistent)) >= amount
            && lookAhead - (end - counters.released.pointee.load(ordering: .sequentiallyConsistent)) >= amount
    }

    /// Stores `message` at the tail and makes it visible to the downstream;
    /// returns its position. Requires ``pumpHasCapacity``.
    @inlinable
    func publish(_ message: consuming Message, recordCount: Int) -> Int {
        let position = tail
        let slot = position & mask
        (messages + slot).initialize(to: message)
        remaining[slot].store(recordCount, ordering: .relaxed)
        if recordCount > 1 { multis[slot] = MultiOutcomes(count: recordCount - 1) }
        if recordCount == 0 { counters.acknowledged.pointee.add(1, ordering: .sequentiallyConsistent) }
        tail = position + 1
        // Sequentially consistent: paired with the downstream's "waiting" flag (see ProducerFlowStorage).
        counters.published.pointee.store(tail, ordering: .sequentiallyConsistent)
        return position
    }

    /// Record `index` of the message at `position` failed (refused by librdkafka,
    /// or reported failed): the message fails, and with it the run.
    @inlinable
    func fail(position: Int, error: KafkaError) {
        let slot = position & mask
        failures.withLock { failures in
            if failures[slot] == nil { failures[slot] = error }
        }
        remaining[slot].bitwiseOr(Self.failedBit, ordering: .sequentiallyConsistent)
    }

    // MARK: Poll-thread side

    /// Applies delivery reports; returns whether any of them failed.
    @inlinable
    func deliver(_ reports: UnsafeBufferPointer<DeliveryReport>) -> Bool {
        var failed = false
        var completed = 0
        let positionMask: UInt64 = (1 << Self.positionBits) - 1
        let indexMask: UInt64 = (1 << Self.indexBits) - 1
        for report in reports {
            let slot = Int((report.token >> Self.indexBits) & positionMask) & mask
            let index = Int(report.token & indexMask)
            if report.error == RD_KAFKA_RESP_ERR_NO_ERROR {
                let outcome = Outcome(partition: report.partition, offset: report.offset, timestamp: report.timestamp)
                if index == 0 {
                    outcomes[slot] = outcome
                } else if let multi = multis[slot], index - 1 < multi.outcomes.count {
                    multi.outcomes[index - 1] = outcome
                }
            } else {
                // The message is intact until its slot completes, and it cannot complete before this report.
                fail(position: slot, error: report.failure(topic: Self.topic(of: messages[slot], index: index)))
                failed = true
            }
            if remaining[slot].subtract(1, ordering: .sequentiallyConsistent).newValue == 0 { completed += 1 }
        }
        if completed > 0 { counters.acknowledged.pointee.add(completed, ordering: .sequentiallyConsistent) }
        return failed
    }

    // MARK: Downstream side

    @usableFromInline
    enum PopResult {
        /// `count` results were appended.
        case emitted(Int)
        /// The head message failed (everything before it was emitted).
        case failed(KafkaError)
        /// The head message is not complete, or nothing is published.
        case nothingReady
    }

    /// The most results one ``pop(into:)`` moves: the buffer stays small enough to be in cache
    /// when its results are taken (a whole window of results went through memory twice).
    @inlinable
    static var popBatch: Int { 64 }

    /// Moves the complete messages from the head (up to ``popBatch``), in order, into `buffer` as results.
    @inlinable
    func pop(into buffer: ResultBuffer) -> PopResult {
        let end = min(counters.published.pointee.load(ordering: .acquiring), head + Self.popBatch)
        var head = self.head
        var count = 0
        while head < end {
            let slot = head & mask
            let state = remaining[slot].load(ordering: .acquiring)
            if state & Self.failedBit != 0 {
                if count > 0 { break }
                let error = failures.withLock { $0.removeValue(forKey: slot) }
                return .failed(error ?? KafkaError(.deliveryFailed, "a record was not delivered"))
            }
            guard state == 0 else { break }
            let message = (messages + slot).move()
            let multi = multis[slot]
            if multi != nil { multis[slot] = nil }
            buffer.append(Self.result(consume message, first: outcomes[slot], rest: multi, topics: buffer))
            head += 1
            count += 1
        }
        guard count > 0 else { return .nothingReady }
        self.head = head
        counters.headMirror.pointee.store(head, ordering: .sequentiallyConsistent)
        return .emitted(count)
    }

    /// Whether ``pop(into:)`` would return something now. Safe from any thread:
    /// the downstream re-checks with it before waiting, the poll thread before waking it.
    @inlinable
    func headIsReady() -> Bool {
        let head = counters.headMirror.pointee.load(ordering: .sequentiallyConsistent)
        guard head < counters.published.pointee.load(ordering: .sequentiallyConsistent) else { return false }
        let state = remaining[head & mask].load(ordering: .sequentiallyConsistent)
        return state == 0 || state & Self.failedBit != 0
    }

    /// Whether every published message has been popped.
    @inlinable
    var isDrained: Bool { head == counters.published.pointee.load(ordering: .sequentiallyConsistent) }

    /// The downstream's consumer has taken everything popped so far: that capacity is free again.
    @inlinable
    func giveBack() {
        counters.released.pointee.store(head, ordering: .sequentiallyConsistent)
    }

    /// Results handed from ``pop(into:)`` to the downstream consumer: appended in
    /// place and moved out one by one, so a result is never copied (no retain/release pair per element).
    @usableFromInline
    final class ResultBuffer {
        // Used by one task at a time (the downstream's): no dynamic exclusivity checks per element.
        // Unchecked (these four): only the downstream's iterator touches them, never re-entrantly.
        @exclusivity(unchecked) @usableFromInline var storage: UnsafeMutablePointer<Result>
        @exclusivity(unchecked) @usableFromInline var allocated: Int
        @exclusivity(unchecked) @usableFromInline var count = 0
        @exclusivity(unchecked) @usableFromInline var taken = 0

        @inlinable
        init(capacity: Int = 256) {
            allocated = max(capacity, 1)
            storage = .allocate(capacity: allocated)
        }

        deinit {
            (storage + taken).deinitialize(count: count - taken)
            storage.deallocate()
        }

        @inlinable
        var isEmpty: Bool { taken == count }

        // Topic strings seen in records and this thread's own copy of each (see `metadataTopic(_:)`).
        // Unchecked (these two): only the downstream's iterator touches them, like the buffer above.
        @exclusivity(unchecked) @usableFromInline var topicSources: [String] = []
        @exclusivity(unchecked) @usableFromInline var topicCopies: [String] = []

        /// The topic to put in a result's ``RecordMetadata``: a copy of `topic` made by the
        /// downstream, not the record's own string. The record's string was retained by the
        /// upstream on the pump's thread and is released on the downstream's when the result
        /// is dropped; its reference count already moves between the two cores once per
        /// record, and a metadata sharing it added a retain and a release on that contended
        /// line per result (measured: ~5% of the flow's CPU with one topic). Inline (short)
        /// strings have no reference count and are returned as they are; beyond 16 distinct
        /// topics the record's string is shared, as before.
        @inlinable
        func metadataTopic(_ topic: String) -> String {
            for i in topicSources.indices where topicSources[i] == topic { return topicCopies[i] }
            guard topic.utf8.count > 15, topicSources.count < 16 else { return topic }
            let copy = String(decoding: Array(topic.utf8), as: UTF8.self)
            topicSources.append(topic)
            topicCopies.append(copy)
            return copy
        }

        @inlinable
        func append(_ result: consuming Result) {
            if count == allocated {
                let bigger = UnsafeMutablePointer<Result>.allocate(capacity: allocated * 2)
                (bigger + taken).moveInitialize(from: storage + taken, count: count - taken)
                storage.deallocate()
                storage = bigger
                allocated *= 2
            }
            (storage + count).initialize(to: result)
            count += 1
        }

        /// The next result, moved out; nil when all were taken (the buffer is then reset).
        @inlinable
        func take() -> Result? {
            guard taken < count else {
                taken = 0
                count = 0
                return nil
            }
            defer { taken += 1 }
            return (storage + taken).move()
        }
    }

    /// The topic of record `index` of the published message at `position`, for an error
    /// message. Only while that record can get no delivery report (so its slot cannot complete).
    @inlinable
    func topic(at position: Int, index: Int) -> String {
        Self.topic(of: messages[position & mask], index: index)
    }

    // MARK: Helpers

    @inlinable
    static func topic(of message: Message, index: Int) -> String {
        switch message {
        case .single(let record, _): return record.topic
        case .multi(let records, _): return index < records.count ? records[index].topic : "?"
        case .passThrough: return "?"
        }
    }

    @inlinable
    static func result(_ message: consuming Message, first: Outcome, rest: MultiOutcomes?, topics: ResultBuffer)
        -> Result
    {
        switch consume message {
        case .single(let record, let passThrough):
            return .single(metadata(record, first, topics), record, passThrough: passThrough)
        case .multi(let records, let passThrough):
            var parts: [ProducedRecord<Key, Value>] = []
            parts.reserveCapacity(records.count)
            for (i, record) in records.enumerated() {
                parts.append(
                    ProducedRecord(
                        metadata: metadata(record, i == 0 ? first : rest?.outcomes[i - 1] ?? Outcome(), topics),
                        record: record))
            }
            return .multi(parts, passThrough: passThrough)
        case .passThrough(let passThrough):
            return .passThrough(passThrough)
        }
    }

    @inlinable
    static func metadata(_ record: borrowing ProducerRecord<Key, Value>, _ outcome: Outcome, _ topics: ResultBuffer)
        -> RecordMetadata
    {
        RecordMetadata(
            topic: topics.metadataTopic(record.topic), partition: outcome.partition, offset: outcome.offset,
            timestamp: outcome.timestamp)
    }
}
