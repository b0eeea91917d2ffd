import CRdKafka
import Foundation
import ReactiveKafka

/// The offered load of the latency scenario: a raw librdkafka producer writing values of
/// `size` bytes round-robin over the partitions of the input topic, each stamped with the time
/// it is produced and its measuring point (``LatencyStamp``).
///
/// Paced against `ContinuousClock` deadlines, one every ``tick``: at each it produces every
/// record due by then at the rate, so a late wake-up is caught up at the next deadline instead of
/// stretching the schedule. The load is open-loop: a slow pipeline does not slow it down. Its own
/// `linger.ms` is 5 whatever the pipelines use, so that both pipelines see the same input batches;
/// with less the embedded cluster drowns: at 0 nearly every record is a batch of its own, and the
/// mock broker walks a partition's batches from the oldest for every fetch (measured at 50,000
/// msgs/s over 64 partitions: p50 1–4.5 s with 0, 32–64 ms with 5). The wait this adds, up to
/// 5 ms, is in both sides' latencies alike. Each call blocks until its records are acknowledged:
/// run it on a dedicated thread, one call at a time.
final class LoadGenerator: @unchecked Sendable {
    static let tick: Duration = .milliseconds(1)
    /// The generator's own `linger.ms`, whatever the pipelines use.
    static let lingerMilliseconds = 5

    /// What one paced call produced.
    struct Paced: Sendable {
        /// Records of the measured point (the warm-up's are point 0).
        var measured = 0
        /// How late the generator woke for a deadline, at worst.
        var worstLateness: Duration = .zero
    }

    private let producer: RawProducer
    private let clock: LatencyClock
    private let topic: String
    private let topicName: UnsafeMutablePointer<CChar>
    private let value: UnsafeMutableRawBufferPointer
    private let vus: UnsafeMutablePointer<rd_kafka_vu_t>
    private let partitions: Int32
    private var partition: Int32 = 0
    /// Every record produced so far, all points.
    private(set) var produced = 0

    init(_ env: BenchEnvironment, clock: LatencyClock) throws {
        guard env.parameters.size >= LatencyStamp.size else {
            throw BenchError(
                "latency: values of \(env.parameters.size) B cannot hold the \(LatencyStamp.size)-byte stamp: pass --size \(LatencyStamp.size) or more"
            )
        }
        producer = try RawProducer(
            env, client: "latency load generator", overrides: [("linger.ms", String(Self.lingerMilliseconds))])
        self.clock = clock
        topic = env.inputTopic
        partitions = Int32(env.parameters.partitions)
        topicName = strdup(env.inputTopic)!
        value = .allocate(byteCount: env.parameters.size, alignment: 16)
        value.initializeMemory(as: UInt8.self, repeating: UInt8(ascii: "x"))
        vus = .allocate(capacity: 4)
        vus.initialize(repeating: rd_kafka_vu_t(), count: 4)
        vus[0].vtype = RD_KAFKA_VTYPE_TOPIC
        vus[0].u.cstr = UnsafePointer(topicName)
        vus[1].vtype = RD_KAFKA_VTYPE_PARTITION
        vus[2].vtype = RD_KAFKA_VTYPE_VALUE
        vus[2].u.mem.ptr = value.baseAddress
        vus[2].u.mem.size = value.count
        vus[3].vtype = RD_KAFKA_VTYPE_MSGFLAGS
        vus[3].u.i = RD_KAFKA_MSG_F_COPY
        try producer.learnMetadata(of: topic)
    }

    deinit {
        vus.deallocate()
        value.deallocate()
        free(topicName)
    }

    /// Produces at `rate` records a second: for `warmUp` as point 0, then for `measured` as `point`.
    func paced(rate: Int, warmUp: Duration, measured: Duration, point: UInt32) throws -> Paced {
        let warmUpSeconds = warmUp.inSeconds
        var result = Paced()
        try pace(rate: rate, until: { $0 >= warmUp + measured }) { due in
            let measuredRecord = due >= warmUpSeconds
            if measuredRecord { result.measured += 1 }
            return measuredRecord ? point : 0
        } lateness: {
            result.worstLateness = max(result.worstLateness, $0)
        }
        try flush()
        return result
    }

    /// Produces point-0 records at `rate` until `ready()` holds (checked at every deadline);
    /// throws once `timeout` passed without it.
    func warmUp(rate: Int, timeout: Duration, until ready: () -> Bool) throws {
        var isReady = false
        try pace(
            rate: rate,
            until: { elapsed in
                isReady = ready()
                return isReady || elapsed >= timeout
            }, point: { _ in 0 }, lateness: { _ in })
        try flush()
        guard isReady else { throw BenchError("latency: the pipeline relayed nothing within \(timeout) of starting") }
    }

    /// Produces `count` records of `point` as fast as librdkafka takes them; returns when it began
    /// (``LatencyClock`` nanoseconds).
    func unpaced(count: Int, point: UInt32) throws -> Int64 {
        let started = clock.nanoseconds()
        for _ in 0..<count { try produceOne(point: point) }
        try flush()
        return started
    }

    // MARK: -

    /// Every ``tick``: produces the records due by now at `rate`, each of the point `point` gives
    /// for its due time (seconds from the start), until `done` holds for the time elapsed.
    private func pace(
        rate: Int, until done: (_ elapsed: Duration) -> Bool, point: (_ dueSeconds: Double) -> UInt32,
        lateness: (Duration) -> Void
    ) throws {
        let start = ContinuousClock.now
        var sent = 0
        var deadline = start
        while true {
            let now = ContinuousClock.now
            lateness(now - deadline)
            let elapsed = now - start
            if done(elapsed) { break }
            let due = Int(elapsed.inSeconds * Double(rate))
            while sent < due {
                try produceOne(point: point(Double(sent) / Double(rate)))
                sent += 1
            }
            rd_kafka_poll(producer.handle, 0)
            // The next deadline still ahead: after a late wake-up the missed ones are not slept for.
            let ticks = Int((ContinuousClock.now - start) / Self.tick) + 1
            deadline = start + Self.tick * ticks
            let wait = deadline - .now
            if wait > .zero { Thread.sleep(forTimeInterval: wait.inSeconds) }
        }
    }

    @inline(__always)
    private func produceOne(point: UInt32) throws(KafkaError) {
        LatencyStamp.write(sentNanoseconds: clock.nanoseconds(), point: point, into: value.baseAddress!)
        vus[1].u.i32 = partition
        partition += 1
        if partition == partitions { partition = 0 }
        try RawBaselines.produce(producer.handle, vus, 4, topic: topic)
        produced += 1
    }

    private func flush() throws(KafkaError) {
        let err = rd_kafka_flush(producer.handle, 60_000)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError(
                .deliveryFailed,
                "latency load generator: \(topic) not acknowledged within 60 s: \(RawClient.describe(err))")
        }
        try producer.deliveries.check(expected: produced, topic: topic)
    }
}
