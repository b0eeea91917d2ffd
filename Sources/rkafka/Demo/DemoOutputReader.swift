import CRdKafka
import Foundation
import ReactiveKafka

/// Reads a whole topic straight through librdkafka (no consumer group, no
/// connector code), so the demo checks the pipeline against something it did
/// not write itself. Blocking librdkafka calls run on a thread of their own.
enum DemoOutputReader {
    /// Every record value of `topic` up to each partition's high watermark as
    /// of the call, handed to `handle` in batches on the reader's thread.
    static func readAll(
        topic: String, bootstrapServers: String, timeout: Duration = .seconds(30),
        handle: @escaping @Sendable ([[UInt8]]) -> Void
    ) async throws(KafkaError) -> Int {
        let result: Result<Int, KafkaError> = await withCheckedContinuation { continuation in
            let thread = Thread {
                continuation.resume(
                    returning: Result { () throws(KafkaError) -> Int in
                        try readBlocking(
                            topic: topic, bootstrapServers: bootstrapServers, timeout: timeout, handle: handle)
                    })
            }
            thread.name = "rkafka-demo-reader"
            thread.start()
        }
        return try result.get()
    }

    private static func readBlocking(
        topic: String, bootstrapServers: String, timeout: Duration, handle: ([[UInt8]]) -> Void
    ) throws(KafkaError) -> Int {
        let deadline = ContinuousClock.now + timeout
        let conf = try RawClient.conf(
            [
                ("bootstrap.servers", bootstrapServers), ("group.id", "rkafka-demo-verify-\(UUID().uuidString)"),
                ("enable.auto.commit", "false"), ("enable.partition.eof", "false"), ("log_level", "3"),
            ], client: "verification reader")
        let rk = try RawClient.client(RD_KAFKA_CONSUMER, conf, client: "verification reader")
        defer {
            rd_kafka_consumer_close(rk)
            rd_kafka_destroy(rk)
        }
        rd_kafka_poll_set_consumer(rk)
        let partitions = try partitionCount(rk, topic: topic, timeoutMs: timeout.wholeMilliseconds)
        var remaining: [Int32: Int64] = [:]
        let assignment = rd_kafka_topic_partition_list_new(partitions)!
        defer { rd_kafka_topic_partition_list_destroy(assignment) }
        for p in 0..<partitions {
            var low: Int64 = 0
            var high: Int64 = 0
            let err = rd_kafka_query_watermark_offsets(rk, topic, p, &low, &high, timeout.wholeMilliseconds)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw KafkaError(.kafka, "watermarks of \(topic)-\(p): \(RawClient.describe(err))")
            }
            if high > low { remaining[p] = high }
            rd_kafka_topic_partition_list_add(assignment, topic, p).pointee.offset = Int64(RD_KAFKA_OFFSET_BEGINNING)
        }
        guard !remaining.isEmpty else { return 0 }
        let err = rd_kafka_assign(rk, assignment)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError(.kafka, "assigning \(topic): \(RawClient.describe(err))")
        }
        guard let queue = rd_kafka_queue_get_consumer(rk) else { throw KafkaError(.fatal, "no consumer queue") }
        defer { rd_kafka_queue_destroy(queue) }
        var messages = [UnsafeMutablePointer<rd_kafka_message_t>?](repeating: nil, count: 4096)
        var count = 0
        while !remaining.isEmpty {
            guard ContinuousClock.now < deadline else {
                throw KafkaError(
                    .brokerUnreachable,
                    "reading \(topic) timed out; partitions not read to the end: \(remaining.keys.sorted())")
            }
            let n = rd_kafka_consume_batch_queue(queue, 100, &messages, messages.count)
            guard n > 0 else { continue }
            var values: [[UInt8]] = []
            values.reserveCapacity(n)
            var failure: KafkaError?
            for i in 0..<n {
                let message = messages[i]!
                let m = message.pointee
                if m.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                    values.append(m.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: m.len)) } ?? [])
                    if let high = remaining[m.partition], m.offset + 1 >= high { remaining[m.partition] = nil }
                } else if failure == nil {
                    failure = KafkaError(.kafka, "reading \(topic): \(RawClient.describe(m.err))")
                }
                rd_kafka_message_destroy(message)
            }
            if let failure { throw failure }
            count += values.count
            handle(values)
        }
        return count
    }

    private static func partitionCount(_ rk: OpaquePointer, topic: String, timeoutMs: Int32) throws(KafkaError) -> Int32
    {
        let rkt = rd_kafka_topic_new(rk, topic, nil)
        defer { rd_kafka_topic_destroy(rkt) }
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(rk, 0, rkt, &metadata, timeoutMs)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            throw KafkaError(.kafka, "metadata of \(topic): \(RawClient.describe(err))")
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        guard metadata.pointee.topic_cnt == 1, metadata.pointee.topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError(.kafka, "topic \(topic) not found")
        }
        return metadata.pointee.topics[0].partition_cnt
    }
}
