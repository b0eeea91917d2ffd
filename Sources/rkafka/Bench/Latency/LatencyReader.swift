import CRdKafka
import ReactiveKafka
import Synchronization

/// Reads a pipeline's output topic from its beginning (every partition assigned, no group)
/// until stopped, and records in a ``LatencyRecorder`` each record's latency: from the stamp
/// the load generator wrote in its value to the moment this reader took it from librdkafka.
/// Like ``RawRelay`` it sleeps in `poll(2)` until librdkafka signals that records are queued.
final class LatencyReader: @unchecked Sendable {
    private let env: BenchEnvironment
    private let topic: String
    private let recorder: LatencyRecorder
    private let clock: LatencyClock
    private let wakeup: QueueWakeup
    private let stopped = Atomic<Bool>(false)

    init(_ env: BenchEnvironment, topic: String, recorder: LatencyRecorder, clock: LatencyClock) throws {
        self.env = env
        self.topic = topic
        self.recorder = recorder
        self.clock = clock
        wakeup = try QueueWakeup()
    }

    /// Ends ``run()``.
    func stop() {
        stopped.store(true, ordering: .releasing)
        wakeup.signal()
    }

    /// Reads until ``stop()``; returns notes on consumer error events. Blocking: run it on a
    /// dedicated thread.
    func run() throws -> [String] {
        let consumer = try RawConsumer(
            env, group: "\(topic)-reader", topic: topic, client: "latency reader", subscribe: false)
        defer { consumer.close() }
        try consumer.assign(partitions: env.parameters.partitions, at: Int64(RD_KAFKA_OFFSET_BEGINNING))
        let capacity = RawBaselines.consumeBatchSize
        let batch = UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>.allocate(capacity: capacity)
        defer { batch.deallocate() }
        let stamps = UnsafeMutableBufferPointer<(sent: Int64, point: UInt32)>.allocate(capacity: capacity)
        defer { stamps.deallocate() }
        wakeup.enable(consumer.queue)
        defer { wakeup.disable(consumer.queue) } // before the consumer closes (the defer above)

        var errors = ConsumeErrors()
        while !stopped.load(ordering: .acquiring) {
            wakeup.clear()
            let k = rd_kafka_consume_batch_queue(consumer.queue, 0, batch, capacity)
            guard k > 0 else {
                // Bounded, so that a missed signal costs at most this; any record wakes it at once.
                wakeup.wait(timeoutMilliseconds: 100)
                continue
            }
            let readAt = clock.nanoseconds()
            var stamped = 0
            var unstamped = 0
            for i in 0..<k {
                let message = batch[i]!
                if message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                    if let stamp = LatencyStamp.read(message.pointee.payload, length: message.pointee.len) {
                        stamps[stamped] = stamp
                        stamped += 1
                    } else {
                        unstamped += 1
                    }
                } else {
                    errors.record(message.pointee.err)
                }
                rd_kafka_message_destroy(message)
            }
            recorder.record(
                readAt: readAt, stamps: UnsafeBufferPointer(rebasing: stamps[..<stamped]), unstamped: unstamped)
        }
        return errors.notes
    }
}
