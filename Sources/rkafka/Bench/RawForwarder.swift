import CRdKafka
import Foundation
import ReactiveKafka

/// The produce step of the raw at-least-once loops (``RawBaselines/pipeline(_:group:outputTopic:)``
/// and the latency scenario's ``RawRelay``): each consumed message produced to `outputTopic`, same
/// partition, key and value, as one batch of ``PipelineBatches``, whose tag rides in each message's
/// opaque so that delivery reports count the batch down.
///
/// The `rd_kafka_vu_t` array and the topic's C string are set up once; per message nothing is allocated.
final class RawForwarder {
    private let producer: RawProducer
    private let batches: PipelineBatches
    private let topic: String
    private let topicName: UnsafeMutablePointer<CChar>
    private let vus: UnsafeMutablePointer<rd_kafka_vu_t>

    init(producer: RawProducer, batches: PipelineBatches, outputTopic: String) {
        self.producer = producer
        self.batches = batches
        topic = outputTopic
        topicName = strdup(outputTopic)!
        vus = UnsafeMutablePointer<rd_kafka_vu_t>.allocate(capacity: 6)
        vus.initialize(repeating: rd_kafka_vu_t(), count: 6)
        vus[0].vtype = RD_KAFKA_VTYPE_TOPIC
        vus[0].u.cstr = UnsafePointer(topicName)
        vus[1].vtype = RD_KAFKA_VTYPE_PARTITION
        vus[2].vtype = RD_KAFKA_VTYPE_VALUE
        vus[3].vtype = RD_KAFKA_VTYPE_MSGFLAGS
        vus[3].u.i = RD_KAFKA_MSG_F_COPY
        vus[4].vtype = RD_KAFKA_VTYPE_OPAQUE
        vus[5].vtype = RD_KAFKA_VTYPE_KEY
    }

    deinit {
        vus.deallocate()
        free(topicName)
    }

    /// Produces the `count` consumed `messages` as one batch and destroys them; returns how many
    /// were records (error events go to `errors`). While every batch slot is in flight it serves
    /// delivery reports and commits what completed, on `consumer`.
    func forward(
        _ messages: UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>, count: Int,
        consumer: OpaquePointer,
        errors: inout ConsumeErrors
    ) throws(KafkaError) -> Int {
        let handle = producer.handle
        while batches.isFull {
            rd_kafka_poll(handle, 1)
            batches.commitCompleted(consumer)
        }
        let slot = batches.open()
        vus[4].u.ptr = UnsafeMutableRawPointer(bitPattern: slot.tag)
        var got = 0
        for i in 0..<count {
            let message = messages[i]!
            let m = message.pointee
            if m.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                got += 1
                vus[1].u.i32 = m.partition
                vus[2].u.mem.ptr = m.payload
                vus[2].u.mem.size = m.len
                var fields = 5
                if let key = m.key {
                    vus[5].u.mem.ptr = key
                    vus[5].u.mem.size = m.key_len
                    fields = 6
                }
                try batches.add(slot, partition: m.partition, offset: m.offset)
                try RawBaselines.produce(handle, vus, fields, topic: topic)
                rd_kafka_poll(handle, 0)
            } else {
                errors.record(m.err)
            }
            rd_kafka_message_destroy(message)
        }
        batches.close(slot)
        return got
    }
}
