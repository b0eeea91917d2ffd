import CRdKafka
import Foundation
import ReactiveKafka

/// The raw-librdkafka baselines of `rkafka bench`: the tightest loops librdkafka allows,
/// written against the C API with no connector code in between, with the configuration of
/// the independent C reference (`shared/bench/rdkafka-baseline.c`). Each is blocking and
/// runs on a dedicated thread (``onDedicatedThread(_:_:)``).
///
/// Per message the loops allocate nothing of their own: one payload buffer, one
/// `rd_kafka_vu_t` array and the batch array are set up before the clock starts.
enum RawBaselines {
    /// The most messages one `rd_kafka_consume_batch_queue` call returns.
    static let consumeBatchSize = 10_000
    /// Offsets are committed (asynchronously) after this many messages: `CommitterSettings.maxBatch`'s default.
    static let commitEvery = 1_000

    // MARK: (a) produce

    /// Produces `messages` values of `size` bytes ('x') round-robin over the partitions of
    /// `topic` with `rd_kafka_produceva` (the array form of the C reference's
    /// `rd_kafka_producev`), serving delivery reports with `poll(0)` after each message and
    /// `poll(1)` while the queue is full, then flushes. Measured from the first message to
    /// the last delivery report.
    static func produce(_ env: BenchEnvironment, topic: String) throws -> BenchMeasurement {
        let p = env.parameters
        let producer = try RawProducer(env, client: "baseline producer")
        let payload = UnsafeMutableRawBufferPointer.allocate(byteCount: max(p.size, 1), alignment: 16)
        payload.initializeMemory(as: UInt8.self, repeating: UInt8(ascii: "x"))
        defer { payload.deallocate() }
        let topicName = strdup(topic)!
        defer { free(topicName) }
        let vus = UnsafeMutablePointer<rd_kafka_vu_t>.allocate(capacity: 4)
        vus.initialize(repeating: rd_kafka_vu_t(), count: 4)
        defer { vus.deallocate() }
        vus[0].vtype = RD_KAFKA_VTYPE_TOPIC
        vus[0].u.cstr = UnsafePointer(topicName)
        vus[1].vtype = RD_KAFKA_VTYPE_PARTITION
        vus[2].vtype = RD_KAFKA_VTYPE_VALUE
        vus[2].u.mem.ptr = payload.baseAddress
        vus[2].u.mem.size = p.size
        vus[3].vtype = RD_KAFKA_VTYPE_MSGFLAGS
        vus[3].u.i = RD_KAFKA_MSG_F_COPY

        let handle = producer.handle
        try producer.learnMetadata(of: topic)
        let partitions = Int32(p.partitions)
        var partition: Int32 = 0
        var meter = PhaseMeter()
        meter.begin()
        for _ in 0..<p.messages {
            vus[1].u.i32 = partition
            partition += 1
            if partition == partitions { partition = 0 }
            try produce(handle, vus, 4, topic: topic)
            rd_kafka_poll(handle, 0)
        }
        rd_kafka_flush(handle, 120_000)
        let measurement = meter.finish(messages: p.messages)
        try producer.deliveries.check(expected: p.messages, topic: topic)
        return measurement
    }

    /// `rd_kafka_produceva`, serving delivery reports while the queue is full.
    @inline(__always)
    static func produce(_ handle: OpaquePointer, _ vus: UnsafePointer<rd_kafka_vu_t>, _ count: Int, topic: String)
        throws(KafkaError)
    {
        while let error = rd_kafka_produceva(handle, vus, count) {
            let code = rd_kafka_error_code(error)
            rd_kafka_error_destroy(error)
            guard code == RD_KAFKA_RESP_ERR__QUEUE_FULL else {
                throw KafkaError(
                    .kafka, "producing to \(topic): \(RawClient.describe(code))", code: Int32(code.rawValue))
            }
            rd_kafka_poll(handle, 1)
        }
    }

    // MARK: (b) consume

    /// Consumes the seeded input topic in group `group` with `rd_kafka_consume_batch_queue`
    /// (up to 10,000 messages a call, never more than are still expected, so the last call
    /// does not wait out its timeout), counting messages and bytes. Measured from the first
    /// message to the last.
    static func consume(_ env: BenchEnvironment, group: String) throws -> BenchMeasurement {
        let p = env.parameters
        let consumer = try RawConsumer(env, group: group, topic: env.inputTopic, client: "baseline consumer")
        defer { consumer.close() }
        let batch = UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>.allocate(capacity: consumeBatchSize)
        defer { batch.deallocate() }
        var meter = PhaseMeter()
        var got = 0
        var bytes = 0
        var errors = ConsumeErrors()
        var lastProgress = ContinuousClock.now
        while got < p.messages {
            let k = rd_kafka_consume_batch_queue(consumer.queue, 1000, batch, min(consumeBatchSize, p.messages - got))
            if k > 0 {
                meter.begin()
                for i in 0..<k {
                    let message = batch[i]!
                    if message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                        got += 1
                        bytes += message.pointee.len
                    } else {
                        errors.record(message.pointee.err)
                    }
                    rd_kafka_message_destroy(message)
                }
            }
            try checkProgress(
                got: got, of: p.messages, topic: env.inputTopic, lastProgress: &lastProgress, k: k,
                stall: p.stallTimeout, errors: errors)
        }
        var notes = ["\(bytes) value bytes"]
        notes += errors.notes
        return meter.finish(messages: got, notes: notes)
    }

    // MARK: (c) consume + commit

    /// Like ``consume(_:group:)``, and every 1,000 messages commits the highest offset
    /// seen per partition (+1) with an asynchronous `rd_kafka_commit`; the last commit is
    /// synchronous and inside the measured time. The committed offsets are then read back
    /// and must add up to the number of messages.
    static func consumeCommit(_ env: BenchEnvironment, group: String) throws -> BenchMeasurement {
        let p = env.parameters
        let consumer = try RawConsumer(env, group: group, topic: env.inputTopic, client: "baseline consumer")
        defer { consumer.close() }
        let batch = UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>.allocate(capacity: consumeBatchSize)
        defer { batch.deallocate() }
        var offsets = OffsetTable(partitions: p.partitions, topic: env.inputTopic)
        var meter = PhaseMeter()
        var got = 0
        var sinceCommit = 0
        var errors = ConsumeErrors()
        var lastProgress = ContinuousClock.now
        while got < p.messages {
            let k = rd_kafka_consume_batch_queue(consumer.queue, 1000, batch, min(consumeBatchSize, p.messages - got))
            if k > 0 {
                meter.begin()
                for i in 0..<k {
                    let message = batch[i]!
                    if message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                        got += 1
                        try offsets.observe(partition: message.pointee.partition, offset: message.pointee.offset)
                        sinceCommit += 1
                        // The last commit is synchronous (below), so that the clock includes its acknowledgement.
                        if sinceCommit >= commitEvery && got < p.messages {
                            sinceCommit = 0
                            offsets.commit(consumer.handle, async: true)
                        }
                    } else {
                        errors.record(message.pointee.err)
                    }
                    rd_kafka_message_destroy(message)
                }
            }
            try checkProgress(
                got: got, of: p.messages, topic: env.inputTopic, lastProgress: &lastProgress, k: k,
                stall: p.stallTimeout, errors: errors)
        }
        let finalError = offsets.commit(consumer.handle, async: false)
        var measurement = meter.finish(messages: got, notes: errors.notes)
        if let finalError { throw KafkaError(.commitFailed, "final commit: \(RawClient.describe(finalError))") }
        try consumer.commitFailures.check()
        measurement.notes.append(try consumer.verifyCommitted(partitions: p.partitions, expected: p.messages))
        return measurement
    }

    // MARK: (d) consume → produce → commit

    /// At-least-once pipeline: consumes batches from the seeded input topic, produces each
    /// message (same partition) to `outputTopic`, and commits a batch's offsets only once every
    /// message of it and of all earlier batches is acknowledged. Batches overlap: while one
    /// batch is in flight the next is consumed and produced; delivery reports (served by
    /// `poll(0)` per message) count down each batch, and completed batches at the head are
    /// committed together with one asynchronous `rd_kafka_commit`. At the end it flushes and
    /// commits synchronously, inside the measured time; committed offsets are read back.
    static func pipeline(_ env: BenchEnvironment, group: String, outputTopic: String) throws -> BenchMeasurement {
        let p = env.parameters
        let batches = PipelineBatches(partitions: p.partitions, topic: env.inputTopic)
        let producer = try RawProducer(env, client: "baseline pipeline producer", pipeline: batches)
        let consumer = try RawConsumer(env, group: group, topic: env.inputTopic, client: "baseline pipeline consumer")
        defer { consumer.close() }
        let batch = UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>.allocate(capacity: consumeBatchSize)
        defer { batch.deallocate() }
        let forwarder = RawForwarder(producer: producer, batches: batches, outputTopic: outputTopic)
        let handle = producer.handle
        try producer.learnMetadata(of: outputTopic)
        var meter = PhaseMeter()
        var got = 0
        var errors = ConsumeErrors()
        var lastProgress = ContinuousClock.now
        while got < p.messages {
            let k = rd_kafka_consume_batch_queue(consumer.queue, 1000, batch, min(consumeBatchSize, p.messages - got))
            if k > 0 {
                meter.begin()
                got += try forwarder.forward(batch, count: k, consumer: consumer.handle, errors: &errors)
                // The last commit is synchronous (below), so that the clock includes its acknowledgement.
                if got < p.messages { batches.commitCompleted(consumer.handle) }
            }
            try batches.checkDeliveries()
            try checkProgress(
                got: got, of: p.messages, topic: env.inputTopic, lastProgress: &lastProgress, k: k,
                stall: p.stallTimeout, errors: errors)
        }
        rd_kafka_flush(handle, 120_000)
        try batches.checkDeliveries()
        let finalError = batches.commitCompleted(consumer.handle, async: false)
        var measurement = meter.finish(messages: got, notes: errors.notes)
        if let finalError { throw KafkaError(.commitFailed, "final commit: \(RawClient.describe(finalError))") }
        guard batches.allCommitted else {
            throw KafkaError(.deliveryFailed, "pipeline: batches still unacknowledged after flushing")
        }
        try producer.deliveries.check(expected: got, topic: outputTopic)
        try consumer.commitFailures.check()
        measurement.notes.append(try consumer.verifyCommitted(partitions: p.partitions, expected: p.messages))
        return measurement
    }

    /// Fails a consuming loop that has seen no new message for `stall`.
    @inline(__always)
    private static func checkProgress(
        got: Int, of expected: Int, topic: String, lastProgress: inout ContinuousClock.Instant,
        k: Int, stall: Duration, errors: ConsumeErrors
    ) throws(KafkaError) {
        if k > 0 {
            lastProgress = .now
        } else if ContinuousClock.now - lastProgress > stall {
            throw KafkaError(
                .kafka,
                "consumed only \(got) of \(expected) messages from \(topic): nothing new for \(stall)"
                    + (errors.notes.isEmpty ? "" : " (\(errors.notes.joined(separator: "; ")))")
            )
        }
    }
}

// MARK: - Clients

/// Delivery-report counts, updated on the producing thread while it polls.
final class DeliveryCounter {
    var delivered = 0
    var failed = 0
    var firstError: rd_kafka_resp_err_t?

    func check(expected: Int, topic: String) throws(KafkaError) {
        if failed > 0 || delivered != expected {
            let reason = firstError.map(RawClient.describe) ?? "not acknowledged in time"
            throw KafkaError(
                .deliveryFailed, "\(topic): \(delivered) of \(expected) messages delivered, \(failed) failed: \(reason)"
            )
        }
    }
}

/// A producer with the C reference's configuration whose delivery reports are counted
/// and, for the pipeline, counted down per batch (the message opaque is the batch's tag).
final class RawProducer {
    final class Context {
        let deliveries = DeliveryCounter()
        let pipeline: PipelineBatches?
        init(pipeline: PipelineBatches?) { self.pipeline = pipeline }
    }

    let handle: OpaquePointer
    // Retained here and released in deinit after the handle is destroyed (or if creation fails).
    private let context: Unmanaged<Context>
    var deliveries: DeliveryCounter { context.takeUnretainedValue().deliveries }

    /// `overrides` are set after the environment's producer properties.
    init(_ env: BenchEnvironment, client: String, pipeline: PipelineBatches? = nil, overrides: [(String, String)] = [])
        throws(KafkaError)
    {
        let conf = try RawClient.conf(env.producerProperties + overrides, client: client)
        // Balanced by the release in deinit or in the failure path below.
        context = Unmanaged.passRetained(Context(pipeline: pipeline))
        rd_kafka_conf_set_opaque(conf, context.toOpaque())
        rd_kafka_conf_set_dr_msg_cb(conf) { _, message, opaque in
            guard let message, let opaque else { return }
            // The producer's retained context: released only after the handle is destroyed.
            let context = Unmanaged<Context>.fromOpaque(opaque).takeUnretainedValue()
            let err = message.pointee.err
            if err == RD_KAFKA_RESP_ERR_NO_ERROR {
                context.deliveries.delivered += 1
            } else {
                context.deliveries.failed += 1
                if context.deliveries.firstError == nil { context.deliveries.firstError = err }
            }
            context.pipeline?.delivered(tag: Int(bitPattern: message.pointee._private), error: err)
        }
        do {
            handle = try RawClient.client(RD_KAFKA_PRODUCER, conf, client: client)
        } catch {
            context.release()
            throw error
        }
    }

    deinit {
        for topic in topics { rd_kafka_topic_destroy(topic) }
        rd_kafka_destroy(handle)
        context.release()
    }

    private var topics: [OpaquePointer] = []

    /// Fetches `topic`'s partitions and leaders before the clock starts. Without it the first
    /// message to a topic the producer has not seen yet waits for librdkafka's periodic
    /// (1 s) topic scan to request its metadata, which would be measured as throughput.
    func learnMetadata(of topic: String) throws(KafkaError) {
        guard let rkt = rd_kafka_topic_new(handle, topic, nil) else {
            throw KafkaError(.kafka, "topic handle for \(topic): \(RawClient.describe(rd_kafka_last_error()))")
        }
        topics.append(rkt)
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(handle, 0, rkt, &metadata, 30_000)
        if let metadata { rd_kafka_metadata_destroy(metadata) }
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError(.kafka, "metadata of \(topic): \(RawClient.describe(err))", code: Int32(err.rawValue))
        }
    }
}

/// A group consumer with the C reference's configuration, subscribed to one topic,
/// reading from its consumer queue; asynchronous commit failures are counted.
final class RawConsumer {
    final class CommitFailures {
        var count = 0
        var first: rd_kafka_resp_err_t?
        func check() throws(KafkaError) {
            if let first {
                throw KafkaError(.commitFailed, "\(count) asynchronous commit(s) failed: \(RawClient.describe(first))")
            }
        }
    }

    let handle: OpaquePointer
    let queue: OpaquePointer
    // Retained here, released by close() after the handle is destroyed (or if creation fails).
    private let failures: Unmanaged<CommitFailures>
    var commitFailures: CommitFailures { failures.takeUnretainedValue() }
    /// The topic it subscribes to, reads the committed offsets of, or is assigned.
    let topic: String
    private var closed = false

    /// `subscribe: false` gives a handle that never joins the group: it reads the group's
    /// committed offsets without waiting for a rebalance against members leaving it, or is
    /// assigned partitions (`assign(partitions:at:)`).
    init(_ env: BenchEnvironment, group: String, topic: String, client: String, subscribe: Bool = true)
        throws(KafkaError)
    {
        let conf = try RawClient.conf(env.consumerProperties(group: group), client: client)
        // Balanced by the release in close() or in the failure path below.
        failures = Unmanaged.passRetained(CommitFailures())
        rd_kafka_conf_set_opaque(conf, failures.toOpaque())
        rd_kafka_conf_set_offset_commit_cb(conf) { _, err, _, opaque in
            // _NO_OFFSET: nothing new to commit, which is not a failure.
            guard let opaque, err != RD_KAFKA_RESP_ERR_NO_ERROR, err != RD_KAFKA_RESP_ERR__NO_OFFSET else { return }
            // The consumer's retained failures: released only after the handle is destroyed.
            let failures = Unmanaged<CommitFailures>.fromOpaque(opaque).takeUnretainedValue()
            failures.count += 1
            if failures.first == nil { failures.first = err }
        }
        let handle: OpaquePointer
        do {
            handle = try RawClient.client(RD_KAFKA_CONSUMER, conf, client: client)
        } catch {
            failures.release()
            throw error
        }
        self.handle = handle
        self.topic = topic
        rd_kafka_poll_set_consumer(handle)
        queue = rd_kafka_queue_get_consumer(handle)
        guard subscribe else { return }
        let list = rd_kafka_topic_partition_list_new(1)
        rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA)
        let err = rd_kafka_subscribe(handle, list)
        rd_kafka_topic_partition_list_destroy(list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            close()
            throw KafkaError(.kafka, "subscribing to \(topic): \(RawClient.describe(err))", code: Int32(err.rawValue))
        }
    }

    /// Leaves the group and destroys the handle. Idempotent.
    func close() {
        guard !closed else { return }
        closed = true
        rd_kafka_queue_destroy(queue)
        rd_kafka_consumer_close(handle)
        rd_kafka_destroy(handle)
        failures.release()
    }

    deinit { close() }

    /// Reads back the group's committed offsets; they must add up to `expected` (fresh topic, offsets from 0).
    func verifyCommitted(partitions: Int, expected: Int) throws(KafkaError) -> String {
        let list = rd_kafka_topic_partition_list_new(Int32(partitions))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for partition in 0..<partitions { rd_kafka_topic_partition_list_add(list, topic, Int32(partition)) }
        let err = rd_kafka_committed(handle, list, 30_000)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError(.kafka, "reading committed offsets: \(RawClient.describe(err))", code: Int32(err.rawValue))
        }
        var total: Int64 = 0
        for i in 0..<Int(list.pointee.cnt) where list.pointee.elems[i].offset > 0 {
            total += list.pointee.elems[i].offset
        }
        guard total == Int64(expected) else {
            throw KafkaError(.commitFailed, "committed offsets of \(topic) add up to \(total), expected \(expected)")
        }
        return "committed offsets verified (\(total))"
    }
}

/// Message-level errors a consuming loop saw (they are not counted as messages).
struct ConsumeErrors {
    private(set) var count = 0
    private(set) var first: rd_kafka_resp_err_t?

    mutating func record(_ err: rd_kafka_resp_err_t) {
        count += 1
        if first == nil { first = err }
    }

    var notes: [String] {
        guard let first else { return [] }
        return ["\(count) consumer error event(s), first: \(RawClient.describe(first))"]
    }
}

/// The highest consumed offset per partition since the last commit, committed as offset+1.
struct OffsetTable {
    private var highest: [Int64]
    private var dirty: [Int32] = []
    private let topic: String

    init(partitions: Int, topic: String) {
        highest = [Int64](repeating: -1, count: partitions)
        dirty.reserveCapacity(partitions)
        self.topic = topic
    }

    @inline(__always)
    mutating func observe(partition: Int32, offset: Int64) throws(KafkaError) {
        let index = Int(partition)
        guard index < highest.count else {
            throw KafkaError(.invalidConfiguration, "\(topic) has more partitions than --partitions \(highest.count)")
        }
        if highest[index] < 0 { dirty.append(partition) }
        if offset > highest[index] { highest[index] = offset }
    }

    /// Commits what was observed since the last commit; returns a synchronous commit's error.
    @discardableResult
    mutating func commit(_ consumer: OpaquePointer, async: Bool) -> rd_kafka_resp_err_t? {
        guard !dirty.isEmpty else { return nil }
        let list = rd_kafka_topic_partition_list_new(Int32(dirty.count))
        for partition in dirty {
            rd_kafka_topic_partition_list_add(list, topic, partition).pointee.offset = highest[Int(partition)] + 1
            highest[Int(partition)] = -1
        }
        dirty.removeAll(keepingCapacity: true)
        let err = rd_kafka_commit(consumer, list, async ? 1 : 0)
        rd_kafka_topic_partition_list_destroy(list)
        return err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : err
    }
}

/// In-flight batches of the raw pipeline: how many of each batch's messages still await
/// their delivery report, and which offsets the batch covers. A ring of slots; the head is
/// the oldest batch not yet committed, and batches are committed strictly in order.
final class PipelineBatches {
    struct Slot { let tag: Int }

    private let capacity = 1024
    private var remaining: [Int]
    private var isOpen: [Bool]
    private var offsets: [[Int64]]
    private var head = 0
    private var next = 0
    private var pending: OffsetTable
    private let topic: String
    private(set) var failures = 0
    private var firstFailure: rd_kafka_resp_err_t?

    init(partitions: Int, topic: String) {
        remaining = [Int](repeating: 0, count: capacity)
        isOpen = [Bool](repeating: false, count: capacity)
        offsets = [[Int64]](repeating: [Int64](repeating: -1, count: partitions), count: capacity)
        pending = OffsetTable(partitions: partitions, topic: topic)
        self.topic = topic
    }

    var isFull: Bool { next - head == capacity }
    var allCommitted: Bool { head == next }

    /// Starts a batch; its tag (sequence number + 1, never 0) goes into each message's opaque.
    func open() -> Slot {
        let index = next % capacity
        remaining[index] = 0
        isOpen[index] = true
        next += 1
        return Slot(tag: next)
    }

    @inline(__always)
    func add(_ slot: Slot, partition: Int32, offset: Int64) throws(KafkaError) {
        let index = (slot.tag - 1) % capacity
        let p = Int(partition)
        guard p < offsets[index].count else {
            throw KafkaError(
                .invalidConfiguration, "\(topic) has more partitions than --partitions \(offsets[index].count)")
        }
        remaining[index] += 1
        if offset > offsets[index][p] { offsets[index][p] = offset }
    }

    /// No more messages join the batch: it completes when its count reaches zero.
    func close(_ slot: Slot) { isOpen[(slot.tag - 1) % capacity] = false }

    /// Called from the delivery-report callback.
    func delivered(tag: Int, error: rd_kafka_resp_err_t) {
        guard tag > 0 else { return }
        remaining[(tag - 1) % capacity] -= 1
        if error != RD_KAFKA_RESP_ERR_NO_ERROR {
            failures += 1
            if firstFailure == nil { firstFailure = error }
        }
    }

    /// A failed delivery ends the run: committing past it would lose the message.
    func checkDeliveries() throws(KafkaError) {
        if let firstFailure {
            throw KafkaError(
                .deliveryFailed, "pipeline: \(failures) deliveries failed: \(RawClient.describe(firstFailure))")
        }
    }

    /// Commits, in one request, every fully acknowledged batch at the head; returns a synchronous commit's error.
    @discardableResult
    func commitCompleted(_ consumer: OpaquePointer, async: Bool = true) -> rd_kafka_resp_err_t? {
        var any = false
        while head < next {
            let index = head % capacity
            guard !isOpen[index], remaining[index] == 0 else { break }
            for p in 0..<offsets[index].count where offsets[index][p] >= 0 {
                try? pending.observe(partition: Int32(p), offset: offsets[index][p])
                offsets[index][p] = -1
            }
            head += 1
            any = true
        }
        return any ? pending.commit(consumer, async: async) : nil
    }
}
