/// What one collection round read from the cluster, before any estimate: the raw input of
/// ``LagTracker/update(_:at:)``.
public struct LagReading: Sendable, Equatable {
    /// A group's committed offsets and, when the cluster described it, its members.
    public struct Group: Sendable, Equatable {
        /// The group id.
        public var name: String
        /// Whether it is a simple (member-less) consumer group; nil when unknown.
        public var isSimpleConsumer: Bool?
        /// Its committed offset (the next offset to read) per partition; partitions without a commit are absent.
        public var committed: [TopicPartition: Int64]
        /// The member each partition is assigned to.
        public var members: [TopicPartition: GroupMember]

        /// Group `name` with its `committed` offsets.
        public init(
            name: String, isSimpleConsumer: Bool? = nil, committed: [TopicPartition: Int64],
            members: [TopicPartition: GroupMember] = [:]
        ) {
            self.name = name
            self.isSimpleConsumer = isSimpleConsumer
            self.committed = committed
            self.members = members
        }
    }

    /// The groups read.
    public var groups: [Group]
    /// The first stored offset of each partition the groups committed on (where it was read).
    public var earliest: [TopicPartition: Int64]
    /// The end offset of each partition the groups committed on (where it was read).
    public var latest: [TopicPartition: Int64]

    /// A reading of `groups` and the offset ranges of their partitions.
    public init(groups: [Group], earliest: [TopicPartition: Int64], latest: [TopicPartition: Int64]) {
        self.groups = groups
        self.earliest = earliest
        self.latest = latest
    }
}
