/// Hooks that run on the consumer's thread *before* partitions move:
/// Alpakka's `PartitionAssignmentHandler`.
///
/// Each call blocks the consumer (and the group's rebalance) until it
/// returns, so keep it short; a call slower than
/// ``ConsumerSettings/partitionHandlerWarning`` is logged as a warning. Use
/// the ``RestrictedConsumer`` to seek, commit synchronously or look up
/// offsets. Records of revoked or lost partitions are dropped before
/// `onRevoke`/`onLost` run, and no record of a newly assigned partition is
/// emitted before `onAssign` returns. Every method has an empty default.
public protocol PartitionAssignmentHandler: Sendable {
    /// `partitions` were assigned (added, under cooperative rebalancing).
    func onAssign(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer)
    /// `partitions` are being revoked in a graceful rebalance; with
    /// rebalance-safe commits, the records emitted for them are committed by now.
    func onRevoke(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer)
    /// `partitions` were lost (the group moved on without this member): their
    /// offsets must not be committed, another member may already own them.
    func onLost(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer)
    /// The consumer is stopping while it holds `partitions`, before it leaves the group.
    func onStop(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer)
}

extension PartitionAssignmentHandler {
    /// Does nothing by default.
    public func onAssign(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {}
    /// Does nothing by default.
    public func onRevoke(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {}
    /// Does nothing by default.
    public func onLost(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {}
    /// Does nothing by default.
    public func onStop(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {}
}

/// A change of a consumer's partitions, as seen by asynchronous observers
/// (``ConsumerControl/rebalanceEvents()``).
public enum RebalanceEvent: Sendable, Equatable, CustomStringConvertible {
    /// Partitions were assigned to the consumer (added, under cooperative rebalancing).
    case assigned(Set<TopicPartition>)
    /// Partitions were revoked in a graceful rebalance.
    case revoked(Set<TopicPartition>)
    /// Partitions were lost: the consumer left or was expelled from the group without revoking them.
    case lost(Set<TopicPartition>)

    /// A rendering for logs and error messages.
    public var description: String {
        switch self {
        case .assigned(let p): return "assigned(\(p.sorted().map(\.description).joined(separator: ", ")))"
        case .revoked(let p): return "revoked(\(p.sorted().map(\.description).joined(separator: ", ")))"
        case .lost(let p): return "lost(\(p.sorted().map(\.description).joined(separator: ", ")))"
        }
    }
}
