import CRdKafka
import Foundation

/// The librdkafka requests of a reading. Each runs on the reader's thread and takes what is
/// left of the reading's deadline; admin requests are answered on the reading's queue.
extension LagReader {
    /// The `ListOffsets` timestamp meaning "the end of the partition".
    static let endTimestamp: Int64 = -1
    /// The `ListOffsets` timestamp meaning "the first offset still stored".
    static let startTimestamp: Int64 = -2

    /// Every partition of the topics `topics` selects (internal topics excluded).
    static func watchedPartitions(_ rk: OpaquePointer, _ topics: NameFilter, _ deadline: BlockingCallDeadline)
        throws(KafkaError) -> [TopicPartition]
    {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(rk, 1, nil, &metadata, try deadline.remainingMilliseconds("listing topics"))
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            throw KafkaError.fromCode(err, "listing topics", kind: kind(of: err))
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        let matcher = topics.matcher()
        var result: [TopicPartition] = []
        for t in UnsafeBufferPointer(start: metadata.pointee.topics, count: Int(metadata.pointee.topic_cnt)) {
            let name = String(cString: t.topic)
            guard t.err == RD_KAFKA_RESP_ERR_NO_ERROR, !name.hasPrefix("__"), matcher.matches(name) else { continue }
            for p in UnsafeBufferPointer(start: t.partitions, count: Int(t.partition_cnt)) {
                result.append(TopicPartition(name, p.id))
            }
        }
        return result
    }

    /// The cluster's consumer groups, or nil when it does not list them (`ListGroups` unsupported).
    static func listGroups(_ rk: OpaquePointer, _ queue: OpaquePointer?, _ deadline: BlockingCallDeadline)
        throws(KafkaError) -> [(name: String, isSimple: Bool)]?
    {
        let options = try adminOptions(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS, deadline, "listing groups")
        defer { rd_kafka_AdminOptions_destroy(options) }
        rd_kafka_ListConsumerGroups(rk, options, queue)
        return try awaitEvents(1, of: RD_KAFKA_EVENT_LISTCONSUMERGROUPS_RESULT, on: queue, deadline, "listing groups") {
            event throws(KafkaError) -> [(name: String, isSimple: Bool)]? in
            try checkEvent(event, "listing groups")
            guard let result = rd_kafka_event_ListConsumerGroups_result(event) else { return [] }
            var errorCount = 0
            if let errors = rd_kafka_ListConsumerGroups_result_errors(result, &errorCount), errorCount > 0,
                let first = errors[0]
            {
                if rd_kafka_error_code(first) == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE { return nil }
                // A broker that did not answer hides the groups it coordinates: the reading fails rather than lose them.
                throw KafkaError(
                    .kafka, "listing groups: \(String(cString: rd_kafka_error_string(first)))",
                    code: Int32(rd_kafka_error_code(first).rawValue))
            }
            var count = 0
            guard let listings = rd_kafka_ListConsumerGroups_result_valid(result, &count) else { return [] }
            return UnsafeBufferPointer(start: listings, count: count).compactMap { listing in
                listing.map {
                    (
                        String(cString: rd_kafka_ConsumerGroupListing_group_id($0)),
                        rd_kafka_ConsumerGroupListing_is_simple_consumer_group($0) != 0
                    )
                }
            }
        }.first ?? nil
    }

    /// Each group's members by the partitions assigned to them. Labels only: a group the
    /// cluster could not describe has none, and the reading goes on.
    static func describeGroups(
        _ rk: OpaquePointer, _ queue: OpaquePointer?, _ names: [String], _ deadline: BlockingCallDeadline
    ) -> [String: [TopicPartition: GroupMember]] {
        guard !names.isEmpty,
            let options = try? adminOptions(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS, deadline, "describing groups")
        else { return [:] }
        defer { rd_kafka_AdminOptions_destroy(options) }
        var pointers: [UnsafePointer<CChar>?] = names.map { UnsafePointer(strdup($0)) }
        defer { for pointer in pointers { free(UnsafeMutablePointer(mutating: pointer)) } }
        pointers.withUnsafeMutableBufferPointer {
            rd_kafka_DescribeConsumerGroups(rk, $0.baseAddress, $0.count, options, queue)
        }
        let described = try? awaitEvents(
            1, of: RD_KAFKA_EVENT_DESCRIBECONSUMERGROUPS_RESULT, on: queue, deadline, "describing groups"
        ) { event -> [String: [TopicPartition: GroupMember]] in
            guard rd_kafka_event_error(event) == RD_KAFKA_RESP_ERR_NO_ERROR,
                let result = rd_kafka_event_DescribeConsumerGroups_result(event)
            else { return [:] }
            var count = 0
            guard let groups = rd_kafka_DescribeConsumerGroups_result_groups(result, &count) else { return [:] }
            var members: [String: [TopicPartition: GroupMember]] = [:]
            for case let group? in UnsafeBufferPointer(start: groups, count: count)
            where rd_kafka_ConsumerGroupDescription_error(group) == nil {
                var assigned: [TopicPartition: GroupMember] = [:]
                for i in 0..<rd_kafka_ConsumerGroupDescription_member_count(group) {
                    guard let m = rd_kafka_ConsumerGroupDescription_member(group, i) else { continue }
                    let member = GroupMember(
                        consumerId: String(cString: rd_kafka_MemberDescription_consumer_id(m)),
                        clientId: String(cString: rd_kafka_MemberDescription_client_id(m)),
                        host: String(cString: rd_kafka_MemberDescription_host(m)))
                    let list = rd_kafka_MemberAssignment_partitions(rd_kafka_MemberDescription_assignment(m))
                    for tp in PartitionList.partitions(list) { assigned[tp] = member }
                }
                members[String(cString: rd_kafka_ConsumerGroupDescription_group_id(group))] = assigned
            }
            return members
        }
        return described?.first ?? [:]
    }

    /// Each group's committed offsets on `partitions` (nil: on every partition); partitions
    /// without a commit are absent. One request per group (librdkafka 2.0.2 takes one group a
    /// call), all in flight at once.
    static func committedOffsets(
        _ rk: OpaquePointer, _ queue: OpaquePointer?, _ names: [String], _ partitions: [TopicPartition]?,
        _ deadline: BlockingCallDeadline
    ) throws(KafkaError) -> [String: [TopicPartition: Int64]] {
        let options = try adminOptions(
            rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS, deadline, "reading committed offsets")
        defer { rd_kafka_AdminOptions_destroy(options) }
        let list = partitions.map { PartitionList.make($0) }
        defer { if let list { rd_kafka_topic_partition_list_destroy(list) } }
        for name in names {
            var request: OpaquePointer? = rd_kafka_ListConsumerGroupOffsets_new(name, list)
            rd_kafka_ListConsumerGroupOffsets(rk, &request, 1, options, queue)
            rd_kafka_ListConsumerGroupOffsets_destroy(request)
        }
        let answers = try awaitEvents(
            names.count, of: RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT, on: queue, deadline,
            "reading committed offsets"
        ) { event throws(KafkaError) -> [(String, [TopicPartition: Int64])] in
            try checkEvent(event, "reading committed offsets")
            var count = 0
            guard let result = rd_kafka_event_ListConsumerGroupOffsets_result(event),
                let groups = rd_kafka_ListConsumerGroupOffsets_result_groups(result, &count)
            else { return [] }
            var answers: [(String, [TopicPartition: Int64])] = []
            for case let group? in UnsafeBufferPointer(start: groups, count: count) {
                let name = String(cString: rd_kafka_group_result_name(group))
                if let error = rd_kafka_group_result_error(group) {
                    // Some brokers (franz-go's kfake) answer this for a group that never committed.
                    if rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND { continue }
                    throw KafkaError(
                        .kafka,
                        "reading committed offsets of group \(name): \(String(cString: rd_kafka_error_string(error)))",
                        code: Int32(rd_kafka_error_code(error).rawValue))
                }
                answers.append((name, offsets(rd_kafka_group_result_partitions(group))))
            }
            return answers
        }
        return Dictionary(answers.flatMap { $0 }, uniquingKeysWith: { a, _ in a })
    }

    /// The end (`timestamp` -1) or start (-2) offset of each partition; partitions whose answer was an error are absent.
    static func listOffsets(
        _ rk: OpaquePointer, _ partitions: Set<TopicPartition>, _ timestamp: Int64, _ what: String,
        _ deadline: BlockingCallDeadline
    ) throws(KafkaError) -> [TopicPartition: Int64] {
        // offsets_for_times with the special timestamps: one ListOffsets request per leader,
        // where query_watermark_offsets would take a round trip per partition.
        let list = PartitionList.make(partitions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for i in 0..<Int(list.pointee.cnt) { list.pointee.elems[i].offset = timestamp }
        let err = rd_kafka_offsets_for_times(rk, list, try deadline.remainingMilliseconds(what))
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError.fromCode(err, what, kind: kind(of: err)) }
        return offsets(list)
    }

    /// The offsets (>= 0, no error) of a librdkafka partition list.
    private static func offsets(_ list: UnsafePointer<rd_kafka_topic_partition_list_t>?) -> [TopicPartition: Int64] {
        guard let list else { return [:] }
        var result: [TopicPartition: Int64] = [:]
        for e in UnsafeBufferPointer(start: list.pointee.elems, count: Int(list.pointee.cnt))
        where e.err == RD_KAFKA_RESP_ERR_NO_ERROR && e.offset >= 0 {
            result[TopicPartition(String(cString: e.topic), e.partition)] = e.offset
        }
        return result
    }
}
