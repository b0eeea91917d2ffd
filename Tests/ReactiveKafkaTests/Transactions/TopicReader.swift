import CRdKafka
import Foundation
import ReactiveKafka

/// Reads what a reader with a given `isolation.level` sees of a topic, straight
/// through librdkafka (none of the connector's code), up to each partition's end
/// as librdkafka reports it (`PARTITION_EOF`: the high watermark for
/// `read_uncommitted`, the last stable offset for `read_committed`). Unlike
/// reading up to the high watermark, this ends on transactional topics, whose
/// last offset is a commit or abort marker no reader ever receives.
enum TopicReader {
    enum Isolation: String {
        case readCommitted = "read_committed"
        case readUncommitted = "read_uncommitted"
    }

    struct ReadError: Error, CustomStringConvertible {
        var description: String
    }

    /// The values (as strings) of every record of `topic` the reader sees, by partition in offset order.
    static func values(
        topic: String, partitions: Int32, bootstrapServers: String, isolation: Isolation,
        timeout: Duration = .seconds(15)
    ) async throws -> [Int32: [String]] {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                continuation.resume(
                    with: Result {
                        try read(
                            topic: topic, partitions: partitions, bootstrapServers: bootstrapServers,
                            isolation: isolation, timeout: timeout)
                    })
            }
            thread.name = "topic-reader"
            thread.start()
        }
    }

    /// All values of `topic` the reader sees, in no particular order across partitions.
    static func allValues(topic: String, partitions: Int32, bootstrapServers: String, isolation: Isolation) async throws
        -> [String]
    {
        try await values(topic: topic, partitions: partitions, bootstrapServers: bootstrapServers, isolation: isolation)
            .sorted { $0.key < $1.key }.flatMap(\.value)
    }

    /// The high watermark (the offset after the last record or marker) of each partition of `topic`.
    static func endOffsets(topic: String, partitions: Int32, bootstrapServers: String) async throws -> [Int32: Int64] {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                continuation.resume(
                    with: Result {
                        let rk = try makeConsumer(bootstrapServers: bootstrapServers, isolation: .readUncommitted)
                        defer { rd_kafka_destroy(rk) }
                        var result: [Int32: Int64] = [:]
                        for p in 0..<partitions {
                            var low: Int64 = 0
                            var high: Int64 = 0
                            let err = rd_kafka_query_watermark_offsets(rk, topic, p, &low, &high, 10_000)
                            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                                throw ReadError(
                                    description:
                                        "watermarks of \(topic)-\(p): \(String(cString: rd_kafka_err2str(err)))")
                            }
                            result[p] = high
                        }
                        return result
                    })
            }
            thread.name = "topic-reader"
            thread.start()
        }
    }

    private static func makeConsumer(bootstrapServers: String, isolation: Isolation) throws -> OpaquePointer {
        let conf = rd_kafka_conf_new()!
        var errstr = [CChar](repeating: 0, count: 512)
        let properties = [
            "bootstrap.servers": bootstrapServers,
            "group.id": "topic-reader-\(UUID().uuidString)",
            "enable.auto.commit": "false",
            "enable.partition.eof": "true",
            "isolation.level": isolation.rawValue,
            "log_level": "0",
        ]
        for (key, value) in properties
        where rd_kafka_conf_set(conf, key, value, &errstr, errstr.count) != RD_KAFKA_CONF_OK {
            rd_kafka_conf_destroy(conf)
            throw ReadError(description: "reader config \(key): \(String(cString: errstr))")
        }
        guard let rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            throw ReadError(description: "reader: \(String(cString: errstr))")
        }
        rd_kafka_poll_set_consumer(rk)
        return rk
    }

    private static func read(
        topic: String, partitions: Int32, bootstrapServers: String, isolation: Isolation, timeout: Duration
    ) throws -> [Int32: [String]] {
        let rk = try makeConsumer(bootstrapServers: bootstrapServers, isolation: isolation)
        defer {
            rd_kafka_consumer_close(rk)
            rd_kafka_destroy(rk)
        }
        let assignment = rd_kafka_topic_partition_list_new(partitions)!
        defer { rd_kafka_topic_partition_list_destroy(assignment) }
        for p in 0..<partitions {
            rd_kafka_topic_partition_list_add(assignment, topic, p).pointee.offset = Int64(RD_KAFKA_OFFSET_BEGINNING)
        }
        rd_kafka_assign(rk, assignment)
        var result: [Int32: [String]] = [:]
        var ended = Set<Int32>()
        let deadline = ContinuousClock.now + timeout
        while ended.count < Int(partitions) {
            guard ContinuousClock.now < deadline else {
                throw ReadError(
                    description:
                        "timed out reading \(topic) (\(isolation.rawValue)); partitions not at their end: \(Set(0..<partitions).subtracting(ended).sorted())"
                )
            }
            guard let message = rd_kafka_consumer_poll(rk, 100) else { continue }
            defer { rd_kafka_message_destroy(message) }
            let m = message.pointee
            if m.err == RD_KAFKA_RESP_ERR__PARTITION_EOF {
                ended.insert(m.partition)
                continue
            }
            guard m.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw ReadError(description: "reading \(topic): \(String(cString: rd_kafka_err2str(m.err)))")
            }
            let value =
                m.payload.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: m.len), as: UTF8.self) } ?? ""
            result[m.partition, default: []].append(value)
        }
        return result
    }
}
