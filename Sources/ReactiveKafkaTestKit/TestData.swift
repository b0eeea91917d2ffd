import CRdKafka
import ReactiveKafka

/// Seeds and reads topics directly with librdkafka, independent of the
/// connector's own sources and flows, so tests can check the connector
/// against something it did not write itself.
public enum TestData {
    /// Writes `values` (key, value) to `topic` and waits until all are
    /// acknowledged. `partition` nil spreads records round-robin over
    /// `partitions` partitions (which must exist) — or by key hash when
    /// `partitions` is nil.
    public static func produce(
        bootstrapServers: String, topic: String, records: [(key: String?, value: String)],
        partition: Int32? = nil, roundRobinOver partitions: Int32? = nil
    ) throws(KafkaError) {
        var errstr = [CChar](repeating: 0, count: 512)
        let conf = rd_kafka_conf_new()!
        for (k, v) in ["bootstrap.servers": bootstrapServers, "linger.ms": "5", "log_level": "0",
                       "queue.buffering.max.messages": "2000000"] {
            _ = rd_kafka_conf_set(conf, k, v, &errstr, errstr.count)
        }
        guard let producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errstr, errstr.count) else {
            throw KafkaError(.fatal, "test producer: \(String(cString: errstr))")
        }
        defer { rd_kafka_destroy(producer) }
        let rkt = rd_kafka_topic_new(producer, topic, nil)!
        defer { rd_kafka_topic_destroy(rkt) }
        for (i, record) in records.enumerated() {
            let target = partition ?? partitions.map { Int32(i) % $0 } ?? RD_KAFKA_PARTITION_UA
            var value = Array(record.value.utf8)
            var key = record.key.map { Array($0.utf8) }
            while true {
                let result = value.withUnsafeMutableBytes { v in
                    if key != nil {
                        return key!.withUnsafeMutableBytes { k in
                            rd_kafka_produce(rkt, target, RD_KAFKA_MSG_F_COPY, v.baseAddress, v.count, k.baseAddress, k.count, nil)
                        }
                    }
                    return rd_kafka_produce(rkt, target, RD_KAFKA_MSG_F_COPY, v.baseAddress, v.count, nil, 0, nil)
                }
                if result == 0 { break }
                let err = rd_kafka_last_error()
                guard err == RD_KAFKA_RESP_ERR__QUEUE_FULL else {
                    throw KafkaError.init(.deliveryFailed, "test producer: \(String(cString: rd_kafka_err2str(err)))")
                }
                rd_kafka_poll(producer, 10)
            }
            rd_kafka_poll(producer, 0)
        }
        let err = rd_kafka_flush(producer, 30_000)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(.deliveryFailed, "test producer flush: \(String(cString: rd_kafka_err2str(err)))")
        }
    }

    /// The committed offsets (next offset to read) of `group` for `partitions`
    /// of `topic`; partitions without a commit are absent (all of them when the group does not exist).
    public static func committedOffsets(bootstrapServers: String, group: String, topic: String, partitions: Int32) throws(KafkaError) -> [Int32: Int64] {
        var errstr = [CChar](repeating: 0, count: 512)
        let conf = rd_kafka_conf_new()!
        for (k, v) in ["bootstrap.servers": bootstrapServers, "group.id": group, "log_level": "0"] {
            _ = rd_kafka_conf_set(conf, k, v, &errstr, errstr.count)
        }
        guard let consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, &errstr, errstr.count) else {
            throw KafkaError(.fatal, "test consumer: \(String(cString: errstr))")
        }
        defer { rd_kafka_destroy(consumer) }
        let list = rd_kafka_topic_partition_list_new(partitions)!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for p in 0..<partitions { _ = rd_kafka_topic_partition_list_add(list, topic, p) }
        let err = rd_kafka_committed(consumer, list, 10_000)
        // A group that has never committed has no offsets: Kafka answers each partition with
        // none, some brokers (franz-go's kfake) answer GROUP_ID_NOT_FOUND for the whole group.
        if err == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND { return [:] }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(.kafka, "reading committed offsets: \(String(cString: rd_kafka_err2str(err)))")
        }
        var result: [Int32: Int64] = [:]
        for i in 0..<Int(list.pointee.cnt) where list.pointee.elems[i].offset >= 0 {
            result[list.pointee.elems[i].partition] = list.pointee.elems[i].offset
        }
        return result
    }

    /// Commits `offsets` (the next offset to read, per partition of `topic`) for `group`
    /// without joining it, as a simple consumer does. The group must have no members: the
    /// coordinator refuses a member-less commit to a group that has them.
    public static func commit(bootstrapServers: String, group: String, topic: String, offsets: [Int32: Int64]) throws(KafkaError) {
        var errstr = [CChar](repeating: 0, count: 512)
        let conf = rd_kafka_conf_new()!
        for (k, v) in ["bootstrap.servers": bootstrapServers, "group.id": group, "log_level": "0"] {
            _ = rd_kafka_conf_set(conf, k, v, &errstr, errstr.count)
        }
        guard let consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, &errstr, errstr.count) else {
            throw KafkaError(.fatal, "test committer: \(String(cString: errstr))")
        }
        defer { rd_kafka_destroy(consumer) }
        let list = rd_kafka_topic_partition_list_new(Int32(offsets.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for (partition, offset) in offsets { rd_kafka_topic_partition_list_add(list, topic, partition).pointee.offset = offset }
        let err = rd_kafka_commit(consumer, list, 0)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(.commitFailed, "test committer: \(String(cString: rd_kafka_err2str(err)))")
        }
    }
}
