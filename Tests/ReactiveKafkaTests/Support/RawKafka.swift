import CRdKafka
import Foundation
import ReactiveKafka

/// Reads what is really in a topic, straight through librdkafka with none of
/// the connector's code, so tests can check what a stage wrote.
///
/// ```swift
/// let records = try await RawKafka.readAll(topic: "orders", bootstrapServers: kafka.bootstrapServers)
/// #expect(records.map(\.valueString) == ["a", "b"])
/// ```
///
/// It assigns every partition of the topic from the beginning (no consumer
/// group, nothing committed) and reads until each partition's high watermark
/// as it was when the call started. The blocking librdkafka calls run on a
/// thread of their own, never on the Swift cooperative pool.
enum RawKafka {
    /// One record as stored in Kafka.
    struct Record: Sendable, Equatable {
        var topic: String
        var partition: Int32
        var offset: Int64
        /// `nil` for a null key.
        var key: [UInt8]?
        /// `nil` for a null value.
        var value: [UInt8]?
        /// Headers in order; a `nil` value is a null header value.
        var headers: [Header]
        /// Milliseconds since the epoch, if stored.
        var timestamp: Int64?

        struct Header: Sendable, Equatable {
            var key: String
            var value: [UInt8]?
        }

        var keyString: String? { key.map { String(decoding: $0, as: UTF8.self) } }
        var valueString: String? { value.map { String(decoding: $0, as: UTF8.self) } }
    }

    /// Failures of the reader itself (not of the code under test).
    struct ReadError: Error, CustomStringConvertible {
        var description: String
    }

    /// Every record of `topic`, ordered by partition then offset.
    /// - Parameter timeout: how long to wait for metadata and for the records up to the watermarks.
    static func readAll(topic: String, bootstrapServers: String, timeout: Duration = .seconds(10)) async throws
        -> [Record]
    {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                continuation.resume(
                    with: Result {
                        try readAllBlocking(topic: topic, bootstrapServers: bootstrapServers, timeout: timeout)
                    })
            }
            thread.name = "raw-kafka-reader"
            thread.start()
        }
    }

    /// The records of `topic` grouped by partition, in offset order.
    static func readByPartition(topic: String, bootstrapServers: String, timeout: Duration = .seconds(10)) async throws
        -> [Int32: [Record]]
    {
        Dictionary(
            grouping: try await readAll(topic: topic, bootstrapServers: bootstrapServers, timeout: timeout),
            by: \.partition)
    }

    private static func readAllBlocking(topic: String, bootstrapServers: String, timeout: Duration) throws -> [Record] {
        let timeoutMs = Int32(
            timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        let deadline = ContinuousClock.now + timeout
        let rk = try makeConsumer(bootstrapServers: bootstrapServers)
        defer {
            rd_kafka_consumer_close(rk)
            rd_kafka_destroy(rk)
        }
        let partitions = try partitionCount(rk, topic: topic, timeoutMs: timeoutMs)
        var remaining: [Int32: Int64] = [:] // partition -> high watermark
        let assignment = rd_kafka_topic_partition_list_new(partitions)!
        defer { rd_kafka_topic_partition_list_destroy(assignment) }
        for p in 0..<partitions {
            var low: Int64 = 0
            var high: Int64 = 0
            let err = rd_kafka_query_watermark_offsets(rk, topic, p, &low, &high, timeoutMs)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw ReadError(description: "watermarks of \(topic)-\(p): \(String(cString: rd_kafka_err2str(err)))")
            }
            if high > low { remaining[p] = high }
            rd_kafka_topic_partition_list_add(assignment, topic, p).pointee.offset = Int64(RD_KAFKA_OFFSET_BEGINNING)
        }
        var records: [Record] = []
        guard !remaining.isEmpty else { return records }
        let err = rd_kafka_assign(rk, assignment)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw ReadError(description: "assigning \(topic): \(String(cString: rd_kafka_err2str(err)))")
        }
        while !remaining.isEmpty {
            guard ContinuousClock.now < deadline else {
                throw ReadError(
                    description:
                        "timed out reading \(topic); partitions not read to their watermark: \(remaining.keys.sorted())"
                )
            }
            guard let message = rd_kafka_consumer_poll(rk, 100) else { continue }
            defer { rd_kafka_message_destroy(message) }
            let m = message.pointee
            if m.err == RD_KAFKA_RESP_ERR__PARTITION_EOF { continue }
            guard m.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw ReadError(description: "reading \(topic): \(String(cString: rd_kafka_err2str(m.err)))")
            }
            records.append(record(message, topic: topic))
            if let high = remaining[m.partition], m.offset + 1 >= high { remaining[m.partition] = nil }
        }
        return records.sorted { ($0.partition, $0.offset) < ($1.partition, $1.offset) }
    }

    private static func makeConsumer(bootstrapServers: String) throws -> OpaquePointer {
        let conf = rd_kafka_conf_new()!
        var errstr = [CChar](repeating: 0, count: 512)
        let properties = [
            "bootstrap.servers": bootstrapServers,
            "group.id": "raw-kafka-\(UUID().uuidString)", // required for assign; nothing is committed
            "enable.auto.commit": "false",
            "enable.partition.eof": "false",
            "log_level": "0",
        ]
        for (key, value) in properties
        where rd_kafka_conf_set(conf, key, value, &errstr, errstr.count) != RD_KAFKA_CONF_OK {
            rd_kafka_conf_destroy(conf)
            throw ReadError(description: "raw reader config \(key): \(String(cString: errstr))")
        }
        guard let rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            throw ReadError(description: "raw reader: \(String(cString: errstr))")
        }
        rd_kafka_poll_set_consumer(rk)
        return rk
    }

    private static func partitionCount(_ rk: OpaquePointer, topic: String, timeoutMs: Int32) throws -> Int32 {
        let rkt = rd_kafka_topic_new(rk, topic, nil)
        defer { rd_kafka_topic_destroy(rkt) }
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(rk, 0, rkt, &metadata, timeoutMs)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            throw ReadError(description: "metadata of \(topic): \(String(cString: rd_kafka_err2str(err)))")
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        guard metadata.pointee.topic_cnt == 1, metadata.pointee.topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw ReadError(description: "topic \(topic) not found")
        }
        return metadata.pointee.topics[0].partition_cnt
    }

    private static func record(_ message: UnsafeMutablePointer<rd_kafka_message_t>, topic: String) -> Record {
        let m = message.pointee
        func bytes(_ pointer: UnsafeMutableRawPointer?, _ count: Int) -> [UInt8]? {
            guard let pointer else { return nil }
            return Array(UnsafeRawBufferPointer(start: pointer, count: count))
        }
        var headers: [Record.Header] = []
        var hdrs: OpaquePointer?
        if rd_kafka_message_headers(message, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs {
            var i = 0
            var name: UnsafePointer<CChar>?
            var value: UnsafeRawPointer?
            var size = 0
            while rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                headers.append(
                    Record.Header(
                        key: String(cString: name!),
                        value: value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }))
                i += 1
            }
        }
        var type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let timestamp = rd_kafka_message_timestamp(message, &type)
        return Record(
            topic: topic, partition: m.partition, offset: m.offset,
            key: bytes(m.key, m.key_len), value: bytes(m.payload, m.len),
            headers: headers, timestamp: type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? nil : timestamp)
    }
}
