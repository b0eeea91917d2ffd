/// Consumer-group lag across a cluster at one moment: what one collection round found.
public struct LagSnapshot: Sendable, Equatable {
    /// When the round read the partitions' end offsets.
    public let time: ContinuousClock.Instant
    /// The groups with a committed offset on at least one watched partition, by name.
    public let groups: [ConsumerGroupLag]
    /// The earliest and latest offsets of every partition some group has committed on.
    public let partitions: [PartitionOffsets]

    /// A snapshot of `groups` and `partitions` taken at `time` (both sorted here).
    public init(time: ContinuousClock.Instant, groups: [ConsumerGroupLag], partitions: [PartitionOffsets]) {
        self.time = time
        self.groups = groups.sorted { $0.name < $1.name }
        self.partitions = partitions.sorted { $0.topicPartition < $1.topicPartition }
    }

    /// The group named `name`, if it is in the snapshot.
    public func group(_ name: String) -> ConsumerGroupLag? { groups.first { $0.name == name } }
}

/// A partition's offset range.
public struct PartitionOffsets: Sendable, Equatable {
    /// The partition.
    public let topicPartition: TopicPartition
    /// The first offset still stored (the log start).
    public let earliest: Int64?
    /// The end offset: the offset the next record will get.
    public let latest: Int64

    /// The range `earliest` (nil when unknown) to `latest` of `topicPartition`.
    public init(topicPartition: TopicPartition, earliest: Int64?, latest: Int64) {
        self.topicPartition = topicPartition
        self.earliest = earliest
        self.latest = latest
    }
}

/// One consumer group's lag on each partition it has committed on.
public struct ConsumerGroupLag: Sendable, Equatable {
    /// The group id.
    public let name: String
    /// Whether the group commits without joining (no members, no rebalances); nil when the cluster did not say.
    public let isSimpleConsumer: Bool?
    /// Per partition, in partition order.
    public let partitions: [GroupPartitionLag]

    /// The lag of group `name` on `partitions` (sorted here).
    public init(name: String, isSimpleConsumer: Bool?, partitions: [GroupPartitionLag]) {
        self.name = name
        self.isSimpleConsumer = isSimpleConsumer
        self.partitions = partitions.sorted { $0.topicPartition < $1.topicPartition }
    }

    /// The largest lag in records over the partitions.
    public var maxLag: Int64 { partitions.map(\.lag).max() ?? 0 }
    /// The largest lag in seconds over the partitions whose lag in time is known; nil when none is.
    public var maxLagSeconds: Double? { partitions.compactMap(\.lagSeconds).max() }
    /// The lag in records summed over the partitions.
    public var sumLag: Int64 { partitions.reduce(0) { $0 + $1.lag } }
    /// The lag in records summed per topic.
    public var topicSumLag: [String: Int64] {
        partitions.reduce(into: [:]) { $0[$1.topicPartition.topic, default: 0] += $1.lag }
    }
}

/// A group's position on one partition and how far behind it is.
public struct GroupPartitionLag: Sendable, Equatable {
    /// The partition.
    public let topicPartition: TopicPartition
    /// The group's committed offset: the next offset it will read.
    public let committedOffset: Int64
    /// The partition's end offset when the round read it.
    public let endOffset: Int64
    /// The lag in time, estimated by the partition's ``LagEstimator``.
    public let timeLag: LagEstimator.Estimate
    /// The member the partition is assigned to, when the group has members and the cluster described them.
    public let member: GroupMember?

    /// A group's position `committedOffset` on `topicPartition`, which ends at `endOffset`.
    public init(
        topicPartition: TopicPartition, committedOffset: Int64, endOffset: Int64,
        timeLag: LagEstimator.Estimate, member: GroupMember?
    ) {
        self.topicPartition = topicPartition
        self.committedOffset = committedOffset
        self.endOffset = endOffset
        self.timeLag = timeLag
        self.member = member
    }

    /// Records between the committed offset and the end (never negative: a commit read
    /// before a truncation can be past the end).
    public var lag: Int64 { max(0, endOffset - committedOffset) }
    /// The lag in seconds; nil while it cannot be estimated yet (fewer than two samples).
    public var lagSeconds: Double? { timeLag.seconds }
}

/// A consumer group member, as the group coordinator describes it.
public struct GroupMember: Sendable, Hashable {
    /// The member id the coordinator gave it.
    public let consumerId: String
    /// Its `client.id`.
    public let clientId: String
    /// The host it connected from.
    public let host: String

    /// A member `consumerId` of client `clientId` on `host`.
    public init(consumerId: String, clientId: String, host: String) {
        self.consumerId = consumerId
        self.clientId = clientId
        self.host = host
    }
}
