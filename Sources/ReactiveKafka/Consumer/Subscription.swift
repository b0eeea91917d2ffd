#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What a consumer reads: Alpakka's `Subscriptions`.
///
/// Either a group subscription (``topics(_:)-swift.type.method``,
/// ``topicPattern(_:)``), where the group coordinator assigns partitions and
/// rebalances them, or a manual assignment (``assignment(_:)``,
/// ``assignmentWithOffset(_:)``, ``assignmentOffsetsForTimes(_:)``), where
/// this consumer reads exactly the partitions named and no rebalance happens.
public struct Subscription: Sendable, CustomStringConvertible {
    enum Kind: Sendable, Equatable {
        case topics([String])
        case pattern(String)
        case assignment(Set<TopicPartition>)
        case assignmentWithOffset([TopicPartition: Int64])
        case assignmentOffsetsForTimes([TopicPartition: Int64])
        /// A shared consumer: its sources add and remove partitions (``KafkaConsumer``).
        case external
    }

    let kind: Kind
    /// Runs before partitions move (group subscriptions only).
    private(set) var partitionAssignmentHandler: (any PartitionAssignmentHandler)?

    init(kind: Kind) { self.kind = kind }

    /// Subscribe, as a member of the consumer group, to `topics`; the group
    /// coordinator assigns partitions and rebalances them as members come and go.
    public static func topics(_ topics: String...) -> Subscription { .topics(topics) }

    /// Subscribe, as a member of the consumer group, to `topics`.
    public static func topics(_ topics: [String]) -> Subscription { Subscription(kind: .topics(topics)) }

    /// Subscribe, as a member of the consumer group, to every topic whose name
    /// matches the regular expression `pattern` (POSIX extended, as librdkafka
    /// matches it), including topics created later (seen at the next metadata
    /// refresh, `topic.metadata.refresh.interval.ms`).
    public static func topicPattern(_ pattern: String) -> Subscription { Subscription(kind: .pattern(pattern)) }

    /// Read exactly `partitions`, from the group's committed offsets (or
    /// `auto.offset.reset` where none is committed). No group membership.
    public static func assignment(_ partitions: Set<TopicPartition>) -> Subscription {
        Subscription(kind: .assignment(partitions))
    }

    /// Read exactly `partitions`.
    public static func assignment(_ partitions: TopicPartition...) -> Subscription { .assignment(Set(partitions)) }

    /// Read each partition from the given offset (the first record emitted is at that offset).
    public static func assignmentWithOffset(_ offsets: [TopicPartition: Int64]) -> Subscription {
        Subscription(kind: .assignmentWithOffset(offsets))
    }

    /// Read each partition from its first record whose timestamp is at or after
    /// the given time (milliseconds since the epoch); a partition with no such
    /// record starts at its end.
    public static func assignmentOffsetsForTimes(_ timestamps: [TopicPartition: Int64]) -> Subscription {
        Subscription(kind: .assignmentOffsetsForTimes(timestamps))
    }

    /// With `handler` called, on the consumer's thread, before partitions move.
    public func withPartitionAssignmentHandler(_ handler: any PartitionAssignmentHandler) -> Subscription {
        var copy = self
        copy.partitionAssignmentHandler = handler
        return copy
    }

    /// The partitions of a manual assignment (none for group subscriptions).
    var manualPartitions: Set<TopicPartition> {
        switch kind {
        case .assignment(let p): return p
        case .assignmentWithOffset(let o), .assignmentOffsetsForTimes(let o): return Set(o.keys)
        case .topics, .pattern, .external: return []
        }
    }

    /// True for group subscriptions (the coordinator assigns partitions).
    var isGroupSubscription: Bool {
        switch kind {
        case .topics, .pattern: return true
        case .assignment, .assignmentWithOffset, .assignmentOffsetsForTimes, .external: return false
        }
    }

    /// What librdkafka's subscribe takes: topic names, or the pattern with its leading `^` (none for manual assignments).
    var topicNames: [String] {
        switch kind {
        case .topics(let t): return t
        case .pattern(let p): return [p.hasPrefix("^") ? p : "^" + p]
        case .assignment, .assignmentWithOffset, .assignmentOffsetsForTimes, .external: return []
        }
    }

    func validate() throws(KafkaError) {
        switch kind {
        case .topics(let topics):
            try check(!topics.isEmpty, "subscription names no topic: pass at least one topic to Subscription.topics")
            for topic in topics { try TopicName.validate(topic) }
        case .pattern(let pattern):
            try check(
                !pattern.isEmpty && pattern != "^",
                "topic pattern is empty: pass a regular expression such as \"^orders-.*\"")
            var regex = regex_t()
            let compiled = regcomp(&regex, pattern, REG_EXTENDED | REG_NOSUB)
            if compiled == 0 { regfree(&regex) }
            try check(compiled == 0, "topic pattern \"\(pattern)\" is not a valid regular expression (POSIX extended)")
        case .assignment(let partitions):
            try validatePartitions(partitions)
        case .assignmentWithOffset(let offsets):
            try validatePartitions(Set(offsets.keys))
            for (partition, offset) in offsets {
                try check(
                    offset >= 0,
                    "assignmentWithOffset: offset \(offset) of \(partition) is negative; offsets start at 0")
            }
        case .assignmentOffsetsForTimes(let timestamps):
            try validatePartitions(Set(timestamps.keys))
            for (partition, time) in timestamps {
                try check(
                    time >= 0,
                    "assignmentOffsetsForTimes: timestamp \(time) of \(partition) is negative; pass milliseconds since the epoch"
                )
            }
        case .external:
            break
        }
        if partitionAssignmentHandler != nil {
            try check(
                isGroupSubscription,
                "a partition assignment handler needs a group subscription (topics or topicPattern): a manual assignment never rebalances"
            )
        }
    }

    private func validatePartitions(_ partitions: Set<TopicPartition>) throws(KafkaError) {
        try check(!partitions.isEmpty, "the assignment names no partition: pass at least one TopicPartition")
        for partition in partitions {
            try TopicName.validate(partition.topic)
            try check(
                partition.partition >= 0,
                "partition \(partition.partition) of topic \(partition.topic) is negative; partitions are numbered from 0"
            )
        }
    }

    public var description: String {
        switch kind {
        case .topics(let t): return "topics(\(t.joined(separator: ",")))"
        case .pattern(let p): return "topicPattern(\(p))"
        case .assignment(let p): return "assignment(\(p.sorted().map(\.description).joined(separator: ",")))"
        case .assignmentWithOffset(let o):
            return
                "assignmentWithOffset(\(o.sorted { $0.key < $1.key }.map { "\($0.key)@\($0.value)" }.joined(separator: ",")))"
        case .assignmentOffsetsForTimes(let o):
            return
                "assignmentOffsetsForTimes(\(o.sorted { $0.key < $1.key }.map { "\($0.key)@\($0.value)ms" }.joined(separator: ",")))"
        case .external: return "external"
        }
    }
}
