import CRdKafka
import ReactiveKafka
import Synchronization

/// A raw librdkafka producer for large or paced test data, independent of the
/// connector's producer.
///
/// Unlike ``TestData/produce(bootstrapServers:topic:records:partition:roundRobinOver:)`` it
/// never holds the whole data set: values are generated per record, and at most
/// `maxQueuedKilobytes` wait in librdkafka, so seeding a large topic leaves no heap the size
/// of the topic behind (which would hide memory growth measured afterwards). One producer
/// serves many calls, so a test can feed a topic in chunks while consumers run.
///
/// Calls block until their records are acknowledged: call them from a dedicated thread or
/// while seeding, never from code that must not block the Swift cooperative pool.
public final class BulkProducer: @unchecked Sendable {
    private let handle: OpaquePointer
    private let failures: DeliveryFailures
    private let closed = Atomic<Bool>(false)

    /// Connects to `bootstrapServers`; librdkafka queues at most `maxQueuedKilobytes` of records.
    public init(bootstrapServers: String, maxQueuedKilobytes: Int = 4096) throws(KafkaError) {
        var errstr = [CChar](repeating: 0, count: 512)
        guard let conf = rd_kafka_conf_new() else {
            throw KafkaError(.fatal, "bulk producer: could not allocate a configuration")
        }
        let properties = [
            "bootstrap.servers": bootstrapServers, "linger.ms": "5", "log_level": "0",
            "queue.buffering.max.kbytes": String(max(1, maxQueuedKilobytes)),
        ]
        for (key, value) in properties
        where rd_kafka_conf_set(conf, key, value, &errstr, errstr.count) != RD_KAFKA_CONF_OK {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(.invalidConfiguration, "bulk producer: \(key)=\(value): \(Self.text(errstr))")
        }
        let failures = DeliveryFailures()
        // Unretained: `self.failures` holds it until deinit, and deinit destroys the handle first.
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(failures).toOpaque())
        rd_kafka_conf_set_dr_msg_cb(conf, bulkDeliveryReport)
        guard let handle = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(.fatal, "bulk producer: \(Self.text(errstr))")
        }
        self.handle = handle
        self.failures = failures
    }

    deinit { close() }

    private static func text(_ buffer: [CChar]) -> String {
        buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// Writes one record per index of `indices` to `topic`: partition `index % partitions`,
    /// no key, value `value(index)`. Returns once every record is acknowledged; throws if any
    /// delivery failed or the acknowledgements did not arrive within `timeout`.
    public func produce(
        topic: String, indices: Range<Int>, roundRobinOver partitions: Int32,
        timeout: Duration = .seconds(60), value: (Int) -> String
    ) throws(KafkaError) {
        guard partitions >= 1 else {
            throw KafkaError(.invalidConfiguration, "bulk producer: partitions must be at least 1, got \(partitions)")
        }
        guard !closed.load(ordering: .acquiring) else { throw KafkaError(.shutDown, "bulk producer: already closed") }
        guard let rkt = rd_kafka_topic_new(handle, topic, nil) else {
            throw KafkaError(.invalidConfiguration, "bulk producer: cannot use topic \(topic)")
        }
        defer { rd_kafka_topic_destroy(rkt) }
        for index in indices {
            var bytes = Array(value(index).utf8)
            let partition = Int32(index % Int(partitions))
            while true {
                let result = bytes.withUnsafeMutableBytes {
                    rd_kafka_produce(rkt, partition, RD_KAFKA_MSG_F_COPY, $0.baseAddress, $0.count, nil, 0, nil)
                }
                if result == 0 { break }
                let err = rd_kafka_last_error()
                guard err == RD_KAFKA_RESP_ERR__QUEUE_FULL else {
                    throw KafkaError(
                        .deliveryFailed,
                        "bulk producer: producing to \(topic): \(String(cString: rd_kafka_err2str(err)))")
                }
                // The queue is full: serve delivery reports until space frees up.
                rd_kafka_poll(handle, 10)
            }
            rd_kafka_poll(handle, 0)
        }
        let err = rd_kafka_flush(handle, Int32(clamping: timeout.components.seconds * 1000))
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(
                .deliveryFailed,
                "bulk producer: records to \(topic) not acknowledged within \(timeout): \(String(cString: rd_kafka_err2str(err)))"
            )
        }
        if let failure = failures.take() {
            throw KafkaError(.deliveryFailed, "bulk producer: delivery to \(topic) failed: \(failure)")
        }
    }

    /// Destroys the producer (records not yet flushed are dropped). Idempotent.
    public func close() {
        guard closed.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else {
            return
        }
        rd_kafka_destroy(handle)
    }
}

/// The first delivery failure since it was last taken; written from librdkafka's delivery callback.
final class DeliveryFailures: Sendable {
    private let first = Mutex<String?>(nil)

    func record(_ description: String) {
        first.withLock { if $0 == nil { $0 = description } }
    }

    func take() -> String? {
        first.withLock { value in
            defer { value = nil }
            return value
        }
    }
}

private let bulkDeliveryReport:
    @convention(c) (OpaquePointer?, UnsafePointer<rd_kafka_message_t>?, UnsafeMutableRawPointer?) -> Void = {
        _, message, opaque in
        guard let message, message.pointee.err != RD_KAFKA_RESP_ERR_NO_ERROR, let opaque else { return }
        // The producer's `failures`, alive until the handle is destroyed (see init).
        let failures = Unmanaged<DeliveryFailures>.fromOpaque(opaque).takeUnretainedValue()
        failures.record(
            "partition \(message.pointee.partition): \(String(cString: rd_kafka_err2str(message.pointee.err)))")
    }
