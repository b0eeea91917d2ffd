import CRdKafka
import ReactiveKafka

/// A blocking librdkafka producer for `rkafka produce`, used from the main thread
/// (never from the cooperative pool). Stand-in until the connector's
/// `Producer.plainSink` is available.
///
/// Back-pressure: when librdkafka's queue is full, ``send(topic:key:value:)`` serves
/// delivery reports until there is room again instead of failing.
final class RawLineProducer {
    /// Delivery outcomes, updated by librdkafka's delivery callback on this thread (during poll/flush).
    final class Deliveries {
        var delivered = 0
        var failed = 0
        var firstError: String?
    }

    private let handle: OpaquePointer
    private let deliveries = Deliveries()
    private let retained: Unmanaged<Deliveries>
    private(set) var sent = 0

    init(bootstrapServers: String) throws(KafkaError) {
        let conf = try RawClient.conf(
            [("bootstrap.servers", bootstrapServers), ("linger.ms", "5"), ("log_level", "3")],
            client: "producer"
        )
        retained = Unmanaged.passRetained(deliveries)
        rd_kafka_conf_set_opaque(conf, retained.toOpaque())
        rd_kafka_conf_set_dr_msg_cb(conf) { _, message, opaque in
            guard let message, let opaque else { return }
            let deliveries = Unmanaged<Deliveries>.fromOpaque(opaque).takeUnretainedValue()
            if message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                deliveries.delivered += 1
            } else {
                deliveries.failed += 1
                if deliveries.firstError == nil { deliveries.firstError = RawClient.describe(message.pointee.err) }
            }
        }
        do {
            handle = try RawClient.client(RD_KAFKA_PRODUCER, conf, client: "producer")
        } catch {
            retained.release()
            throw error
        }
    }

    deinit {
        rd_kafka_destroy(handle)
        retained.release()
    }

    /// Queues one record; copies key and value.
    func send(topic: String, key: Substring?, value: Substring) throws(KafkaError) {
        var keyBytes = key.map { Array($0.utf8) }
        var valueBytes = Array(value.utf8)
        var err = RD_KAFKA_RESP_ERR_NO_ERROR
        while true {
            err = topic.withCString { topicName in
                valueBytes.withUnsafeMutableBytes { valueBuffer in
                    var vus = [rd_kafka_vu_t](repeating: rd_kafka_vu_t(), count: 4)
                    vus[0].vtype = RD_KAFKA_VTYPE_TOPIC
                    vus[0].u.cstr = topicName
                    vus[1].vtype = RD_KAFKA_VTYPE_VALUE
                    vus[1].u.mem.ptr = valueBuffer.baseAddress
                    vus[1].u.mem.size = valueBuffer.count
                    vus[2].vtype = RD_KAFKA_VTYPE_MSGFLAGS
                    vus[2].u.i = RD_KAFKA_MSG_F_COPY
                    if keyBytes == nil {
                        return Self.produce(handle, vus, count: 3)
                    }
                    return keyBytes!.withUnsafeMutableBytes { keyBuffer in
                        vus[3].vtype = RD_KAFKA_VTYPE_KEY
                        vus[3].u.mem.ptr = keyBuffer.baseAddress
                        vus[3].u.mem.size = keyBuffer.count
                        return Self.produce(handle, vus, count: 4)
                    }
                }
            }
            guard err == RD_KAFKA_RESP_ERR__QUEUE_FULL else { break }
            rd_kafka_poll(handle, 100)
        }
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError(.kafka, "producing to \(topic): \(RawClient.describe(err))", code: Int32(err.rawValue))
        }
        sent += 1
        rd_kafka_poll(handle, 0)
    }

    private static func produce(_ handle: OpaquePointer, _ vus: [rd_kafka_vu_t], count: Int) -> rd_kafka_resp_err_t {
        vus.withUnsafeBufferPointer { buffer in
            guard let error = rd_kafka_produceva(handle, buffer.baseAddress, count) else { return RD_KAFKA_RESP_ERR_NO_ERROR }
            let code = rd_kafka_error_code(error)
            rd_kafka_error_destroy(error)
            return code
        }
    }

    /// Waits up to `timeout` for every queued record's delivery report.
    /// Returns (delivered, failed, first error); records still queued after the timeout are neither.
    func flush(timeout: Duration) -> (delivered: Int, failed: Int, firstError: String?) {
        _ = rd_kafka_flush(handle, timeout.wholeMilliseconds)
        return (deliveries.delivered, deliveries.failed, deliveries.firstError)
    }
}
