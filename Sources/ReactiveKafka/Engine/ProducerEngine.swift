import CRdKafka
import Foundation
import Logging
import Synchronization

/// The owner of one librdkafka producer handle: produces records, serves
/// delivery reports on a dedicated thread and tears the handle down.
///
/// Delivery reports arrive as batched `RD_KAFKA_EVENT_DR` events on the main
/// queue; the poll thread blocks in `rd_kafka_queue_poll` (woken by librdkafka,
/// or by `rd_kafka_queue_yield` at close) and hands each event's reports to the
/// ``DeliveryReceiver`` whose id is in the records' opaques, one call per
/// receiver per event. Producing never blocks: on `_QUEUE_FULL` the producing
/// task suspends until a delivery event has freed space.
///
/// The engine is deliberately independent of keys, values and stream stages so
/// that a transactional producer can be built on the same handle and thread.
@usableFromInline
final class ProducerEngine: @unchecked Sendable {
    /// The librdkafka handle. Valid until the poll thread destroys it after
    /// ``close(timeout:)``; callers must be inside ``enter()``/``leave()`` (or
    /// otherwise know the engine is open) to use it.
    let handle: OpaquePointer
    private let queue: OpaquePointer
    private let logger: Logger
    /// The values of the secret properties, kept out of what librdkafka's errors say in logs and errors.
    private let secretValues: SecretValues

    // Bit `closedBit` set: no new produce calls. Low bits: produce calls in progress,
    // so teardown never destroys the handle under a caller.
    private static let closedBit = 1 << 62
    private let gate = Atomic<Int>(0)
    // Bumped after every delivery event is destroyed (queue space freed).
    private let spaceGeneration = Atomic<UInt64>(0)
    private let closeRequested = Atomic<Bool>(false)
    // Delivery events whose reports were dispatched, left for a producing task to destroy
    // (see `reapDeliveredEvents()`), and how many producing tasks promised to do so.
    private let graveyard = Mutex(DeliveredEvents())
    private let graveyardCount = Atomic<Int>(0)
    private let reapers = Atomic<Int>(0)
    /// The most events left for producing tasks; beyond it the poll thread destroys them itself.
    private static let graveyardLimit = 64
    // Set once librdkafka raised a fatal error: later produce calls fail without trying.
    private let failedFatally = Atomic<Bool>(false)
    private let state = Mutex(State())
    // Topic handles by name, created once and destroyed at teardown: producing by
    // handle skips librdkafka's per-call topic lookup under its global rwlock, which
    // contended with the broker threads (measured: 2.6× faster on the embedded cluster).
    private let topics = Mutex<[String: TopicHandle]>([:])
    /// The receiver for one-off ``send`` calls.
    let direct: DirectDeliveryReceiver
    // Batches of flexiFlow pumps (see `ProducerFlowBatch`): the poll thread produces the
    // records of a pump that waits for its upstream.
    private let batches = Mutex<[ObjectIdentifier: ProducerFlowBatch]>([:])
    private let batchCount = Atomic<Int>(0)
    // Set while the poll thread sleeps without looking at the batches (up to a second).
    private let sleepingLong = Atomic<Bool>(false)
    // Set by `parkedPumpWaits`: the poll thread's next empty poll was a wake-up, not a timeout.
    private let wokenForBatches = Atomic<Bool>(false)
    /// How often a parked pump's upstream woke the poll thread (tests read it).
    let parkedPumpWakes = Atomic<Int>(0)
    /// swift-metrics instruments (nil when metrics are off): poll thread only.
    private let instruments: ProducerInstruments?
    /// Records acknowledged so far (counted per delivery batch): records per transaction.
    let acknowledgedRecords = Atomic<Int>(0)

    private struct State {
        var receivers: [UInt16: any DeliveryReceiver] = [:]
        var nextReceiverId: UInt16 = 1
        var spaceWaiters: [UInt64: UnsafeContinuation<Void, Never>] = [:]
        var nextWaiterId: UInt64 = 0
        var fatal: KafkaError?
        var closeDeadline: ContinuousClock.Instant?
        var closed = false
        var closeWaiters: [UnsafeContinuation<Void, Never>] = []
    }

    /// Creates the producer from librdkafka `properties` and starts its poll thread.
    /// - Throws: ``KafkaError/Kind/invalidConfiguration`` quoting librdkafka for a bad property.
    init(
        properties: [String: String], metrics: KafkaMetricsSettings = KafkaMetricsSettings(),
        label: String = "reactive-kafka.producer"
    ) throws(KafkaError) {
        let conf = try KafkaClientConfiguration.make(properties, client: "producer")
        rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR)
        let rk = try KafkaClientConfiguration.newClient(
            RD_KAFKA_PRODUCER, conf, properties: properties, client: "producer")
        guard let queue = rd_kafka_queue_get_main(rk) else {
            rd_kafka_destroy(rk)
            throw KafkaError(.fatal, "librdkafka returned no main queue for the producer")
        }
        self.handle = rk
        self.queue = queue
        self.logger = Logger(label: label)
        self.secretValues = SecretValues(of: properties)
        self.direct = DirectDeliveryReceiver()
        self.instruments = ProducerInstruments(metrics, clientId: properties["client.id"])
        state.withLock { $0.receivers[0] = direct }
        let thread = Thread { [self] in pollLoop() }
        thread.name = "rkafka-producer" // at most 15 characters on Linux
        thread.start()
    }

    // MARK: Receivers

    /// Registers `receiver` and returns the id to put in its records' opaques.
    @usableFromInline
    func register(_ receiver: any DeliveryReceiver) throws(KafkaError) -> UInt16 {
        try state.withLock { s throws(KafkaError) -> UInt16 in
            if let fatal = s.fatal { throw fatal }
            guard s.closeDeadline == nil, !s.closed else { throw Self.shutDownError }
            guard s.receivers.count < Int(UInt16.max) else {
                throw KafkaError(
                    .illegalState, "more than 65,534 stages share one producer; create another KafkaProducer")
            }
            // Ids are handed out round-robin so that a late report for a finished
            // stage is unlikely to reach a new stage with the same id.
            while s.receivers[s.nextReceiverId] != nil || s.nextReceiverId == 0 { s.nextReceiverId &+= 1 }
            let id = s.nextReceiverId
            s.nextReceiverId &+= 1
            s.receivers[id] = receiver
            return id
        }
    }

    /// The poll thread will produce `batch`'s records while its pump waits for upstream.
    @usableFromInline
    func register(_ batch: ProducerFlowBatch) {
        batches.withLock { $0[ObjectIdentifier(batch)] = batch }
        batchCount.add(1, ordering: .sequentiallyConsistent)
    }

    /// Stops looking at `batch`; its pump must not be parked.
    @usableFromInline
    func deregister(_ batch: ProducerFlowBatch) {
        if batches.withLock({ $0.removeValue(forKey: ObjectIdentifier(batch)) }) != nil {
            batchCount.subtract(1, ordering: .sequentiallyConsistent)
        }
    }

    /// A registered batch has records again: a poll thread asleep for long must look at it.
    @usableFromInline
    func batchStartedCollecting() {
        if sleepingLong.load(ordering: .sequentiallyConsistent) { rd_kafka_queue_yield(queue) }
    }

    /// A parked pump's upstream is about to wait for records (``UpstreamWait``): the poll thread
    /// looks at the batches now instead of at its next look, up to a millisecond later.
    func parkedPumpWaits() {
        parkedPumpWakes.add(1, ordering: .relaxed)
        wokenForBatches.store(true, ordering: .relaxed)
        rd_kafka_queue_yield(queue)
    }

    /// Produces the records of batches whose pumps wait for upstream; whether any batch
    /// still has records (the poll thread then looks again within a millisecond).
    private func flushParkedBatches() -> Bool {
        guard batchCount.load(ordering: .sequentiallyConsistent) > 0 else { return false }
        let all = batches.withLock { Array($0.values) }
        var collecting = false
        for batch in all where batch.flushIfParked(self) { collecting = true }
        return collecting
    }

    /// Stops routing reports to receiver `id`.
    @usableFromInline
    func deregister(_ id: UInt16) {
        _ = state.withLock { $0.receivers.removeValue(forKey: id) }
    }

    // MARK: Producing

    /// What happened to a produce call.
    enum ProduceOutcome {
        /// librdkafka accepted the record; its delivery report will follow.
        case enqueued
        /// librdkafka refused the record at once (unknown partition, too large, …): no report follows.
        case rejected(rd_kafka_resp_err_t)
        /// The task was cancelled while waiting for queue space; the record was not produced.
        case cancelled
    }

    /// Produces one record, suspending (never spinning, never failing) while
    /// librdkafka's queue is full.
    /// - Throws: ``KafkaError/Kind/shutDown`` after close, ``KafkaError/Kind/fatal`` after a fatal error.
    @inline(__always)
    func produce(
        topic: String, partition: Int32?, key: SerializedBytes?, value: SerializedBytes?,
        headers: [KafkaHeader], timestamp: KafkaTimestamp?, opaque: ProducerOpaque, cancellable: Bool = true
    ) async throws(KafkaError) -> ProduceOutcome {
        while true {
            let generation = spaceGeneration.load(ordering: .acquiring)
            let err = try tryProduce(
                topic: topic, partition: partition, key: key, value: value, headers: headers, timestamp: timestamp,
                opaque: opaque)
            if err == RD_KAFKA_RESP_ERR_NO_ERROR { return .enqueued }
            if err == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                if cancellable {
                    await waitForSpace(since: generation)
                    if Task.isCancelled { return .cancelled }
                } else {
                    await waitForSpaceIgnoringCancellation(since: generation)
                }
                continue
            }
            if err == RD_KAFKA_RESP_ERR__FATAL { throw raiseFatalError() }
            return .rejected(err)
        }
    }

    // MARK: Freeing delivered records on the producing thread

    /// librdkafka allocates each record (with its copied bytes) on the thread that produces it
    /// and frees it when its delivery event is destroyed. Destroyed on the poll thread, every
    /// record was freed on another thread than it was allocated: each free then takes the
    /// producing thread's malloc arena lock (contending with its mallocs), and the arena's heap
    /// shrank and grew again under the churn (page faults). Measured with 100,000 records in
    /// flight: ~12% of the flow's CPU. So while a producing task promises to call
    /// ``reapDeliveredEvents()`` regularly, the poll thread dispatches a delivery event's reports
    /// at once but leaves the event for that task to destroy, on its own thread.
    @usableFromInline
    struct DeliveredEvents: @unchecked Sendable {
        @usableFromInline var events: [OpaquePointer] = []
        @usableFromInline init() {}
    }

    /// The calling task will call ``reapDeliveredEvents()`` regularly (before it suspends, at
    /// the latest) until ``endReaping()``.
    @usableFromInline
    func beginReaping() { reapers.add(1, ordering: .relaxed) }

    @usableFromInline
    func endReaping() {
        reapers.subtract(1, ordering: .relaxed)
        reapDeliveredEvents()
    }

    /// Destroys the delivery events left for producing tasks, on the calling thread, freeing
    /// their records and queue space. One relaxed load when there are none.
    @inlinable
    func reapDeliveredEvents() {
        if hasDeliveredEvents { destroyDeliveredEvents() }
    }

    @usableFromInline
    var hasDeliveredEvents: Bool { graveyardCount.load(ordering: .relaxed) > 0 }

    @usableFromInline
    func destroyDeliveredEvents() {
        let events = graveyard.withLock { g -> [OpaquePointer] in
            let events = g.events
            g.events = []
            return events
        }
        guard !events.isEmpty else { return }
        graveyardCount.subtract(events.count, ordering: .relaxed)
        for event in events { rd_kafka_event_destroy(event) }
        freedSpace()
    }

    /// Queue space was freed: wake producers waiting for it.
    private func freedSpace() {
        spaceGeneration.add(1, ordering: .releasing)
        if state.withLock({ !$0.spaceWaiters.isEmpty }) { wakeSpaceWaiters() }
    }

    /// Whether the poll thread may leave a dispatched delivery event for a producing task.
    private var mayLeaveEventForProducer: Bool {
        reapers.load(ordering: .relaxed) > 0 && graveyardCount.load(ordering: .relaxed) < Self.graveyardLimit
            && !closeRequested.load(ordering: .relaxed) && state.withLock({ $0.spaceWaiters.isEmpty })
    }

    /// The queue-space generation: read it before ``tryProduce`` and pass it to
    /// ``waitForSpace(since:cancellable:)`` after a `_QUEUE_FULL`, so a wake-up in between is not lost.
    @usableFromInline
    var spaceGenerationNow: UInt64 { spaceGeneration.load(ordering: .acquiring) }

    /// Suspends until a delivery event freed queue space since `generation`, the
    /// engine closes or fails, or (if `cancellable`) the task is cancelled.
    @usableFromInline
    func waitForSpace(since generation: UInt64, cancellable: Bool) async {
        if cancellable {
            await waitForSpace(since: generation)
        } else {
            await waitForSpaceIgnoringCancellation(since: generation)
        }
    }

    /// A librdkafka topic handle, shareable between threads (librdkafka's handles are thread-safe).
    @usableFromInline
    struct TopicHandle: @unchecked Sendable {
        let pointer: OpaquePointer
    }

    /// The last topic a producing task used, so that it finds the handle without a lock.
    @usableFromInline
    struct TopicCache {
        @usableFromInline var name: String?
        @usableFromInline var handle: OpaquePointer?
        @inlinable init() {}
    }

    // Called inside enter()/leave(): the handle is alive.
    private func topicHandle(_ name: String, _ cache: inout TopicCache) -> OpaquePointer? {
        if let cached = cache.handle, cache.name == name { return cached }
        let rk = handle
        let found = topics.withLock { topics -> TopicHandle? in
            if let existing = topics[name] { return existing }
            guard let created = rd_kafka_topic_new(rk, name, nil) else { return nil }
            topics[name] = TopicHandle(pointer: created)
            return TopicHandle(pointer: created)
        }?.pointer
        if let found {
            cache.name = name
            cache.handle = found
        }
        return found
    }

    /// One non-blocking `rd_kafka_produceva` call; the bytes are copied by librdkafka.
    func tryProduce(
        topic: String, partition: Int32?, key: SerializedBytes?, value: SerializedBytes?,
        headers: [KafkaHeader], timestamp: KafkaTimestamp?, opaque: ProducerOpaque
    ) throws(KafkaError) -> rd_kafka_resp_err_t {
        var cache = TopicCache()
        return try tryProduce(
            topic: topic, partition: partition, key: key, value: value, headers: headers, timestamp: timestamp,
            opaque: opaque, topicCache: &cache)
    }

    /// One non-blocking `rd_kafka_produceva` call, finding the topic handle through `topicCache` first.
    @usableFromInline
    func tryProduce(
        topic: String, partition: Int32?, key: SerializedBytes?, value: SerializedBytes?,
        headers: [KafkaHeader], timestamp: KafkaTimestamp?, opaque: ProducerOpaque, topicCache: inout TopicCache
    ) throws(KafkaError) -> rd_kafka_resp_err_t {
        guard enter() else {
            throw fatalError ?? Self.shutDownError
        }
        defer { leave() }
        if failedFatally.load(ordering: .relaxed), let fatalError { throw fatalError }
        let rk = handle
        let rkt = topicHandle(topic, &topicCache)
        return Self.withOptionalBytes(key) { keyBytes in
            Self.withOptionalBytes(value) { valueBytes in
                topic.withCString { topicName in
                    withUnsafeTemporaryAllocation(of: rd_kafka_vu_t.self, capacity: 8) { vus in
                        var n = 0
                        func add(_ type: rd_kafka_vtype_t, _ fill: (inout rd_kafka_vu_t) -> Void) {
                            var vu = rd_kafka_vu_t()
                            vu.vtype = type
                            fill(&vu)
                            vus.initializeElement(at: n, to: vu)
                            n += 1
                        }
                        if let rkt {
                            add(RD_KAFKA_VTYPE_RKT) { $0.u.rkt = rkt }
                        } else {
                            // librdkafka refused a handle (e.g. an invalid name): let produce report why.
                            add(RD_KAFKA_VTYPE_TOPIC) { $0.u.cstr = topicName }
                        }
                        if let partition { add(RD_KAFKA_VTYPE_PARTITION) { $0.u.i32 = partition } }
                        if let keyBytes {
                            add(RD_KAFKA_VTYPE_KEY) {
                                $0.u.mem.ptr = Self.nonNull(keyBytes)
                                $0.u.mem.size = keyBytes.count
                            }
                        }
                        if let valueBytes {
                            add(RD_KAFKA_VTYPE_VALUE) {
                                $0.u.mem.ptr = Self.nonNull(valueBytes)
                                $0.u.mem.size = valueBytes.count
                            }
                        }
                        add(RD_KAFKA_VTYPE_OPAQUE) { $0.u.ptr = opaque.pointer }
                        add(RD_KAFKA_VTYPE_MSGFLAGS) { $0.u.i = RD_KAFKA_MSG_F_COPY }
                        if let timestamp { add(RD_KAFKA_VTYPE_TIMESTAMP) { $0.u.i64 = timestamp.milliseconds } }
                        let hdrs = headers.isEmpty ? nil : Self.makeHeaders(headers)
                        if let hdrs { add(RD_KAFKA_VTYPE_HEADERS) { $0.u.headers = hdrs } }
                        defer { vus.baseAddress!.deinitialize(count: n) }
                        guard let error = rd_kafka_produceva(rk, vus.baseAddress, n) else {
                            return RD_KAFKA_RESP_ERR_NO_ERROR
                        }
                        var code = rd_kafka_error_code(error)
                        rd_kafka_error_destroy(error)
                        // On failure the headers were not taken over by librdkafka.
                        if let hdrs { rd_kafka_headers_destroy(hdrs) }
                        // After a fatal error librdkafka may refuse with the underlying code.
                        if code != RD_KAFKA_RESP_ERR__QUEUE_FULL,
                            rd_kafka_fatal_error(rk, nil, 0) != RD_KAFKA_RESP_ERR_NO_ERROR
                        {
                            code = RD_KAFKA_RESP_ERR__FATAL
                        }
                        return code
                    }
                }
            }
        }
    }

    /// The topic handle for `name` through `cache`, so that a stage can produce a
    /// record without keeping a copy of it (see ``tryProduce(rkt:partition:key:value:timestamp:opaque:)``);
    /// nil when librdkafka refuses a handle (e.g. an invalid name): produce by name then reports why.
    /// - Throws: ``KafkaError/Kind/shutDown`` after close, ``KafkaError/Kind/fatal`` after a fatal error.
    @usableFromInline
    func resolveTopic(_ name: String, cache: inout TopicCache) throws(KafkaError) -> OpaquePointer? {
        if let cached = cache.handle, cache.name == name { return cached }
        guard enter() else {
            throw fatalError ?? Self.shutDownError
        }
        defer { leave() }
        return topicHandle(name, &cache)
    }

    /// One non-blocking `rd_kafka_produceva` call for a record without headers to a
    /// handle from ``resolveTopic(_:cache:)``; the bytes are copied by librdkafka.
    /// Topic handles live until teardown, which no produce call can overlap.
    @usableFromInline
    func tryProduce(
        rkt: OpaquePointer, partition: Int32?, key: borrowing SerializedBytes?, value: borrowing SerializedBytes?,
        timestamp: KafkaTimestamp?, opaque: ProducerOpaque
    ) throws(KafkaError) -> rd_kafka_resp_err_t {
        guard enter() else {
            throw fatalError ?? Self.shutDownError
        }
        defer { leave() }
        if failedFatally.load(ordering: .relaxed), let fatalError { throw fatalError }
        let rk = handle
        return Self.withBorrowedBytes(key) { keyBytes in
            Self.withBorrowedBytes(value) { valueBytes in
                var vus = (
                    rd_kafka_vu_t(), rd_kafka_vu_t(), rd_kafka_vu_t(), rd_kafka_vu_t(), rd_kafka_vu_t(),
                    rd_kafka_vu_t(), rd_kafka_vu_t()
                )
                return withUnsafeMutableBytes(of: &vus) { raw in
                    let vu = raw.baseAddress!.assumingMemoryBound(to: rd_kafka_vu_t.self)
                    var n = 0
                    vu[n].vtype = RD_KAFKA_VTYPE_RKT
                    vu[n].u.rkt = rkt
                    n += 1
                    if let partition {
                        vu[n].vtype = RD_KAFKA_VTYPE_PARTITION
                        vu[n].u.i32 = partition
                        n += 1
                    }
                    if let keyBytes {
                        vu[n].vtype = RD_KAFKA_VTYPE_KEY
                        vu[n].u.mem.ptr = Self.nonNull(keyBytes)
                        vu[n].u.mem.size = keyBytes.count
                        n += 1
                    }
                    if let valueBytes {
                        vu[n].vtype = RD_KAFKA_VTYPE_VALUE
                        vu[n].u.mem.ptr = Self.nonNull(valueBytes)
                        vu[n].u.mem.size = valueBytes.count
                        n += 1
                    }
                    vu[n].vtype = RD_KAFKA_VTYPE_OPAQUE
                    vu[n].u.ptr = opaque.pointer
                    n += 1
                    vu[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS
                    vu[n].u.i = RD_KAFKA_MSG_F_COPY
                    n += 1
                    if let timestamp {
                        vu[n].vtype = RD_KAFKA_VTYPE_TIMESTAMP
                        vu[n].u.i64 = timestamp.milliseconds
                        n += 1
                    }
                    guard let error = rd_kafka_produceva(rk, vu, n) else { return RD_KAFKA_RESP_ERR_NO_ERROR }
                    var code = rd_kafka_error_code(error)
                    rd_kafka_error_destroy(error)
                    // After a fatal error librdkafka may refuse with the underlying code.
                    if code != RD_KAFKA_RESP_ERR__QUEUE_FULL,
                        rd_kafka_fatal_error(rk, nil, 0) != RD_KAFKA_RESP_ERR_NO_ERROR
                    {
                        code = RD_KAFKA_RESP_ERR__FATAL
                    }
                    return code
                }
            }
        }
    }

    /// One non-blocking `rd_kafka_produce_batch` call for `count` records to a handle from
    /// ``resolveTopic(_:cache:)``, all to `partition` (`RD_KAFKA_PARTITION_UA`: the partitioner
    /// places each); keys and values are copied by librdkafka. Returns how many were
    /// accepted; each record's `err` says what happened to it (`_QUEUE_FULL` for those
    /// librdkafka had no room for).
    /// - Throws: ``KafkaError/Kind/shutDown`` after close, ``KafkaError/Kind/fatal`` after a fatal error
    ///   (also when librdkafka refused records because of one).
    @usableFromInline
    func tryProduceBatch(
        rkt: OpaquePointer, partition: Int32, messages: UnsafeMutablePointer<rd_kafka_message_t>, count: Int
    ) throws(KafkaError) -> Int {
        guard enter() else {
            throw fatalError ?? Self.shutDownError
        }
        defer { leave() }
        if failedFatally.load(ordering: .relaxed), let fatalError { throw fatalError }
        for i in 0..<count { messages[i].err = RD_KAFKA_RESP_ERR_NO_ERROR }
        let accepted = Int(rd_kafka_produce_batch(rkt, partition, RD_KAFKA_MSG_F_COPY, messages, Int32(count)))
        if accepted < count {
            for i in 0..<count
            where messages[i].err != RD_KAFKA_RESP_ERR_NO_ERROR && messages[i].err != RD_KAFKA_RESP_ERR__QUEUE_FULL {
                // After a fatal error librdkafka refuses with the underlying code.
                if messages[i].err == RD_KAFKA_RESP_ERR__FATAL
                    || rd_kafka_fatal_error(handle, nil, 0) != RD_KAFKA_RESP_ERR_NO_ERROR
                {
                    throw raiseFatalError()
                }
                break
            }
        }
        return accepted
    }

    // Like withOptionalBytes, without copying (retaining) the bytes' owner.
    @inline(__always)
    private static func withBorrowedBytes<R>(
        _ bytes: borrowing SerializedBytes?, _ body: (UnsafeRawBufferPointer?) -> R
    ) -> R {
        switch bytes {
        case .none: return body(nil)
        case .some(.bytes(let b)): return b.withUnsafeBytes { body($0) }
        case .some(.utf8(let s)): return SerializedBytes.utf8(s).withUnsafeBytes { body($0) }
        case .some(.array(let a)): return a.withUnsafeBytes { body($0) }
        case .some(.data(let d)): return d.withUnsafeBytes { body($0) }
        }
    }

    @inline(__always)
    private static func withOptionalBytes<R>(_ bytes: SerializedBytes?, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
        guard let bytes else { return body(nil) }
        return bytes.withUnsafeBytes { body($0) }
    }

    // An empty, non-null key or value must not be passed as NULL (that would be a null key or value).
    // nonisolated(unsafe): never written nor freed; librdkafka copies zero bytes from it.
    nonisolated(unsafe) private static let emptyByte = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 1)
    @inline(__always)
    private static func nonNull(_ bytes: UnsafeRawBufferPointer) -> UnsafeMutableRawPointer {
        bytes.baseAddress.map { UnsafeMutableRawPointer(mutating: $0) } ?? emptyByte
    }

    private static func makeHeaders(_ headers: [KafkaHeader]) -> OpaquePointer {
        let hdrs = rd_kafka_headers_new(headers.count)!
        for header in headers {
            header.key.withCString { name in
                if let value = header.value {
                    value.withUnsafeBytes { _ = rd_kafka_header_add(hdrs, name, -1, nonNull($0), $0.count) }
                } else {
                    _ = rd_kafka_header_add(hdrs, name, -1, nil, 0)
                }
            }
        }
        return hdrs
    }

    /// Marks a produce call in progress; false once the engine is closing.
    @inline(__always)
    private func enter() -> Bool {
        let value = gate.add(1, ordering: .acquiring).newValue
        if value & Self.closedBit != 0 {
            gate.subtract(1, ordering: .releasing)
            return false
        }
        return true
    }

    @inline(__always)
    private func leave() { gate.subtract(1, ordering: .releasing) }

    /// Suspends until a delivery event has freed queue space since `generation`
    /// was read, the engine closes or fails, or the task is cancelled.
    private func waitForSpace(since generation: UInt64) async {
        let id = state.withLock { s -> UInt64 in
            s.nextWaiterId += 1
            return s.nextWaiterId
        }
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    // Checked under the lock the poll thread takes after bumping the
                    // generation, so a wake-up between the failed produce and here is not lost.
                    if spaceGeneration.load(ordering: .acquiring) != generation || s.fatal != nil
                        || s.closeDeadline != nil || s.closed || Task.isCancelled
                    {
                        return true
                    }
                    s.spaceWaiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.spaceWaiters.removeValue(forKey: id) }?.resume()
        }
    }

    private func waitForSpaceIgnoringCancellation(since generation: UInt64) async {
        let id = state.withLock { s -> UInt64 in
            s.nextWaiterId += 1
            return s.nextWaiterId
        }
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let resumeNow = state.withLock { s -> Bool in
                if spaceGeneration.load(ordering: .acquiring) != generation || s.fatal != nil || s.closeDeadline != nil
                    || s.closed
                {
                    return true
                }
                s.spaceWaiters[id] = continuation
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    private func wakeSpaceWaiters() {
        let waiters = state.withLock { s -> [UInt64: UnsafeContinuation<Void, Never>] in
            defer { s.spaceWaiters.removeAll() }
            return s.spaceWaiters
        }
        for waiter in waiters.values { waiter.resume() }
    }

    /// The fatal error librdkafka raised, if any.
    @usableFromInline
    var fatalError: KafkaError? { state.withLock { $0.fatal } }

    /// The fatal error, raising it now if librdkafka reported it to a produce call
    /// before the poll thread saw the error event.
    @usableFromInline
    func raiseFatalError() -> KafkaError {
        if let fatal = fatalError { return fatal }
        failFatally()
        return fatalError ?? KafkaError(.fatal, "the producer hit a fatal error; close it and create a new one")
    }

    static let shutDownError = KafkaError(
        .shutDown, "the producer is closed; create a new KafkaProducer to send more records")

    // MARK: Closing

    /// Stops accepting records, waits up to `timeout` for those in flight to be
    /// delivered, fails the rest with ``KafkaError/Kind/shutDown`` (their
    /// receivers are told), then destroys the handle. Idempotent; every caller
    /// returns once the handle is destroyed.
    func close(timeout: Duration) async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let alreadyClosed = state.withLock { s -> Bool in
                if s.closed { return true }
                s.closeWaiters.append(continuation)
                return false
            }
            if alreadyClosed {
                continuation.resume()
            } else {
                beginClose(timeout: timeout)
            }
        }
    }

    /// Starts closing without waiting (used when the owner is deinitialised).
    @usableFromInline
    func beginClose(timeout: Duration) {
        let first = state.withLock { s -> Bool in
            guard s.closeDeadline == nil, !s.closed else { return false }
            s.closeDeadline = .now + timeout
            return true
        }
        guard first else { return }
        _ = gate.bitwiseOr(Self.closedBit, ordering: .sequentiallyConsistent)
        closeRequested.store(true, ordering: .releasing)
        wakeSpaceWaiters()
        rd_kafka_queue_yield(queue)
    }

    // MARK: Poll thread

    private func pollLoop() {
        let capacity = 4096
        let messages = UnsafeMutablePointer<UnsafePointer<rd_kafka_message_t>?>.allocate(capacity: capacity)
        var reports: [DeliveryReport] = []
        reports.reserveCapacity(capacity)
        defer { messages.deallocate() }
        var purgeDeadline: ContinuousClock.Instant?
        while true {
            let closing = closeRequested.load(ordering: .acquiring)
            // Events left for producing tasks are destroyed here after 1 ms without a new event,
            // in case those tasks stopped producing (an idle upstream).
            let pending = hasDeliveredEvents
            var timeout = pending ? 1 : closing ? 50 : 1000
            if flushParkedBatches() {
                timeout = 1
            } else if timeout == 1000 {
                // A pump that starts collecting now wakes this thread (`batchStartedCollecting`).
                sleepingLong.store(true, ordering: .sequentiallyConsistent)
                if flushParkedBatches() { timeout = 1 }
            }
            let event = rd_kafka_queue_poll(queue, Int32(timeout))
            sleepingLong.store(false, ordering: .relaxed)
            let woken = wokenForBatches.exchange(false, ordering: .relaxed)
            if let event {
                handle(event: event, messages: messages, capacity: capacity, reports: &reports)
            } else if pending && !woken {
                destroyDeliveredEvents()
            }
            if closing { reapDeliveredEvents() }
            guard closeRequested.load(ordering: .acquiring) else { continue }
            if rd_kafka_outq_len(handle) == 0 { break }
            let now = ContinuousClock.now
            if let purgeDeadline {
                // Purged records' reports have had their chance; give up on the rest.
                if now >= purgeDeadline { break }
            } else if let deadline = state.withLock({ $0.closeDeadline }), now >= deadline {
                // Undelivered records come back as _PURGE_QUEUE / _PURGE_INFLIGHT reports.
                rd_kafka_purge(
                    handle, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT | RD_KAFKA_PURGE_F_NON_BLOCKING)
                purgeDeadline = now + .seconds(2)
            }
        }
        teardown()
    }

    private func handle(
        event: OpaquePointer, messages: UnsafeMutablePointer<UnsafePointer<rd_kafka_message_t>?>,
        capacity: Int, reports: inout [DeliveryReport]
    ) {
        switch rd_kafka_event_type(event) {
        case RD_KAFKA_EVENT_DR:
            while true {
                let count = rd_kafka_event_message_array(event, messages, capacity)
                if count == 0 { break }
                reports.removeAll(keepingCapacity: true)
                instruments?.delivered(messages, count: count, handle: handle)
                var failed = 0
                for i in 0..<count {
                    let report = DeliveryReport(messages[i]!)
                    if !report.succeeded { failed += 1 }
                    reports.append(report)
                }
                let anyFailed = failed > 0
                acknowledgedRecords.add(count - failed, ordering: .relaxed)
                // Records failed by a fatal error can arrive before the error event:
                // raise the fatal error first so that receivers report it, not the records' codes.
                if anyFailed, !failedFatally.load(ordering: .relaxed),
                    rd_kafka_fatal_error(handle, nil, 0) != RD_KAFKA_RESP_ERR_NO_ERROR
                {
                    failFatally()
                }
                dispatch(reports)
                if count < capacity { break }
            }
            if mayLeaveEventForProducer {
                graveyard.withLock { $0.events.append(event) }
                graveyardCount.add(1, ordering: .relaxed)
                return
            }
            rd_kafka_event_destroy(event)
            // Space is freed when the event's messages are destroyed.
            freedSpace()
            // So are the events left behind, if a producer waits for space or stopped reaping.
            reapDeliveredEvents()
        case RD_KAFKA_EVENT_ERROR:
            let fatal = rd_kafka_event_error_is_fatal(event) != 0
            let code = rd_kafka_event_error(event)
            let text = secretValues.scrub(
                rd_kafka_event_error_string(event).map { String(cString: $0) }
                    ?? String(cString: rd_kafka_err2str(code)))
            rd_kafka_event_destroy(event)
            if fatal {
                failFatally()
            } else {
                logger.warning(
                    "producer error (librdkafka retries)",
                    metadata: ["code": "\(KafkaError.codeName(Int32(code.rawValue)) ?? "?")", "reason": "\(text)"])
            }
        default:
            rd_kafka_event_destroy(event)
        }
    }

    // One receiver lookup (one lock) per run of reports for the same receiver.
    private func dispatch(_ reports: [DeliveryReport]) {
        reports.withUnsafeBufferPointer { all in
            var start = 0
            while start < all.count {
                let id = all[start].receiver
                var end = start + 1
                while end < all.count, all[end].receiver == id { end += 1 }
                if let receiver = state.withLock({ $0.receivers[id] }) {
                    receiver.deliver(UnsafeBufferPointer(rebasing: all[start..<end]))
                }
                start = end
            }
        }
    }

    private func failFatally() {
        var buffer = [CChar](repeating: 0, count: 512)
        let code = rd_kafka_fatal_error(handle, &buffer, buffer.count)
        let reason = secretValues.scrub(buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
        let error = KafkaError(
            .fatal,
            "the producer hit a fatal error and cannot continue: \(reason). Close it and create a new one (for idempotent producers this usually means the broker lost the producer's state)",
            code: Int32(code.rawValue)
        )
        let receivers = state.withLock { s -> [any DeliveryReceiver]? in
            guard s.fatal == nil else { return nil }
            s.fatal = error
            return Array(s.receivers.values)
        }
        guard let receivers else { return } // already raised
        failedFatally.store(true, ordering: .releasing)
        logger.error("producer fatal error", metadata: ["reason": "\(reason)"])
        wakeSpaceWaiters()
        for receiver in receivers { receiver.fail(error) }
    }

    private func teardown() {
        destroyDeliveredEvents()
        // No produce call may be running when the handle goes away; they are
        // non-blocking, so this waits microseconds at most.
        while gate.load(ordering: .acquiring) & ~Self.closedBit != 0 { sched_yield() }
        let left = rd_kafka_outq_len(handle)
        let receivers = state.withLock { s -> [any DeliveryReceiver] in
            defer { s.receivers.removeAll() }
            return Array(s.receivers.values)
        }
        let error = KafkaError(
            .shutDown,
            "the producer closed before every record was acknowledged (\(left) still queued after closeTimeout); they may or may not have been written"
        )
        for receiver in receivers { receiver.fail(error) }
        let handles = topics.withLock { topics -> [TopicHandle] in
            defer { topics.removeAll() }
            return Array(topics.values)
        }
        for topic in handles { rd_kafka_topic_destroy(topic.pointer) }
        rd_kafka_queue_destroy(queue)
        rd_kafka_destroy(handle)
        instruments?.close()
        let waiters = state.withLock { s -> [UnsafeContinuation<Void, Never>] in
            s.closed = true
            defer { s.closeWaiters.removeAll() }
            return s.closeWaiters
        }
        for waiter in waiters { waiter.resume() }
    }
}
