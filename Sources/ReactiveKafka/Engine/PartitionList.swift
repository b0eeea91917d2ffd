import CRdKafka
import Foundation

/// Conversions between Swift partition collections and librdkafka's
/// `rd_kafka_topic_partition_list_t`.
enum PartitionList {
    /// A new list the caller must destroy with `rd_kafka_topic_partition_list_destroy`.
    static func make<S: Sequence>(_ partitions: S) -> UnsafeMutablePointer<rd_kafka_topic_partition_list_t>
    where S.Element == TopicPartition {
        let array = Array(partitions)
        let list = rd_kafka_topic_partition_list_new(Int32(max(array.count, 1)))!
        for tp in array { _ = rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition) }
        return list
    }

    /// A new list of commit positions (offset and optional metadata).
    static func make(_ offsets: [TopicPartition: CommitPosition]) -> UnsafeMutablePointer<
        rd_kafka_topic_partition_list_t
    > {
        let list = rd_kafka_topic_partition_list_new(Int32(max(offsets.count, 1)))!
        for (tp, position) in offsets {
            let element = rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition)!
            element.pointee.offset = position.nextOffset
            if let metadata = position.metadata {
                // librdkafka frees `metadata` with the list, so it must come from malloc.
                let bytes = Array(metadata.utf8)
                let copy = malloc(max(bytes.count, 1))!
                bytes.withUnsafeBytes {
                    if let base = $0.baseAddress { copy.copyMemory(from: base, byteCount: $0.count) }
                }
                element.pointee.metadata = copy
                element.pointee.metadata_size = bytes.count
            }
        }
        return list
    }

    /// The partitions of `list`.
    static func partitions(_ list: UnsafePointer<rd_kafka_topic_partition_list_t>?) -> [TopicPartition] {
        guard let list else { return [] }
        return (0..<Int(list.pointee.cnt)).map { i in
            let element = list.pointee.elems[i]
            return TopicPartition(String(cString: element.topic), element.partition)
        }
    }

    /// Per-partition errors of `list`, if any element carries one.
    static func errors(_ list: UnsafePointer<rd_kafka_topic_partition_list_t>?) -> [(
        TopicPartition, rd_kafka_resp_err_t
    )] {
        guard let list else { return [] }
        return (0..<Int(list.pointee.cnt)).compactMap { i in
            let element = list.pointee.elems[i]
            guard element.err != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
            return (TopicPartition(String(cString: element.topic), element.partition), element.err)
        }
    }
}

extension PartitionList {
    /// A new list with an offset (or a timestamp, for offsets-for-times) per partition.
    static func make(offsets: [TopicPartition: Int64]) -> UnsafeMutablePointer<rd_kafka_topic_partition_list_t> {
        let list = rd_kafka_topic_partition_list_new(Int32(max(offsets.count, 1)))!
        for (tp, offset) in offsets {
            rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition)!.pointee.offset = offset
        }
        return list
    }

    /// The offset of every element of `list`.
    static func offsets(_ list: UnsafePointer<rd_kafka_topic_partition_list_t>?) -> [TopicPartition: Int64] {
        guard let list else { return [:] }
        var result: [TopicPartition: Int64] = [:]
        for i in 0..<Int(list.pointee.cnt) {
            let element = list.pointee.elems[i]
            result[TopicPartition(String(cString: element.topic), element.partition)] = element.offset
        }
        return result
    }
}
