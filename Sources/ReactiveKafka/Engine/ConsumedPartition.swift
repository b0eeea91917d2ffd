/// A partition as one consumer reads it: the partition, the consumer's group, and the
/// consumer that commits its offsets.
///
/// The consumer engine makes one per partition it reads and every chunk, record offset
/// and commit batch of that partition refers to it, so a ``CommittableOffset`` holds one
/// reference where it would hold three (topic, group, committer): on the per-record path
/// every copy and release of an offset touches each reference it holds.
///
/// The engine keeps these until its thread ends; one holds the engine (as its
/// committer), so the engine drops them then, which breaks the cycle.
@usableFromInline
final class ConsumedPartition: Sendable {
    let topicPartition: TopicPartition
    /// The consumer group, or "" when the consumer reads without one (manual assignment).
    let groupId: String
    let committer: any OffsetCommitter

    init(_ topicPartition: TopicPartition, groupId: String, committer: any OffsetCommitter) {
        self.topicPartition = topicPartition
        self.groupId = groupId
        self.committer = committer
    }
}
