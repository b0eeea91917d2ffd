import CRdKafka
import StreamKit

/// The partitions assigned to a consumer, each with its own sub-stream of
/// records: what ``Consumer/plainPartitionedSource(_:subscription:logger:)``
/// and its kin emit.
///
/// An element, a ``PartitionSource``, is emitted when a partition is assigned; its sub-stream emits
/// that partition's records in order and completes when the partition is
/// revoked or lost (a later assignment of the same partition is a new
/// element), or when the consumer stops. Run the sub-streams concurrently
/// (a task each, or a merging operator): each is back-pressured on its own,
/// and a partition whose sub-stream falls behind is paused alone, so one slow
/// partition does not hold up the others. The whole consumer stays bounded by
/// `maxBufferedBytes`. Cancellation: cancelling the task that iterates this
/// sequence throws `CancellationError` from `next()`. The consumer ends with
/// its streams: once this sequence and every sub-stream it emitted have ended
/// without ``ConsumerControl/stop()``, it leaves its group (see
/// ``KafkaConsumerSequence``).
public struct KafkaPartitionedSequence<Record: Sendable>: AsyncSequence, Sendable {
    /// The error the sequence may end with.
    public typealias Failure = any Error
    /// A partition and the source of its records.
    @available(*, deprecated, renamed: "PartitionSource")
    public typealias SubSource = PartitionSource<Record>

    let control: ConsumerControl
    let makeElement: @Sendable (Int, LentChunk) throws -> Record
    /// Where each newly assigned partition starts (manual-offset sources).
    let offsetsOnAssign: (@Sendable (Set<TopicPartition>) async throws -> [TopicPartition: Int64])?

    /// Makes the iterator that produces this sequence's elements.
    public func makeAsyncIterator() -> Iterator {
        Iterator(sequence: self)
    }

    /// Emits a sub-stream per assigned partition.
    public struct Iterator: AsyncIteratorProtocol {
        let sequence: KafkaPartitionedSequence
        private var engine: ConsumerEngine?
        /// Holds the consumer while this stream runs (each sub-stream holds its own).
        private var lease: ConsumerEngineLease?
        private var pending: [ConsumerEngine.Announcement] = []
        private var finished = false

        init(sequence: KafkaPartitionedSequence) { self.sequence = sequence }

        /// The next element, or `nil` once the sequence has ended.
        public mutating func next() async throws -> PartitionSource<Record>? {
            if finished { return nil }
            do {
                if engine == nil {
                    guard let started = try sequence.control.claimEngine(),
                        let lease = ConsumerEngineLease(started, reader: .all)
                    else {
                        end()
                        return nil
                    }
                    self.lease = lease
                    engine = started
                }
                while pending.isEmpty {
                    guard let announced = try await engine!.nextAssignedPartitions() else {
                        end()
                        return nil
                    }
                    pending = try await startingPositions(announced, engine!)
                }
            } catch {
                end()
                throw error.asCancellation
            }
            let next = pending.removeFirst()
            let subStream = KafkaConsumerSequence<Record>(
                control: sequence.control, reader: .partition(next.partition), since: next.epoch,
                makeElement: sequence.makeElement)
            return PartitionSource(partition: next.partition, source: Source(subStream))
        }

        private mutating func end() {
            finished = true
            pending = []
            lease = nil
        }

        /// Seeks newly assigned partitions to the offsets the application keeps
        /// (if it does) before their sub-streams exist: their first record is at that offset.
        /// Announcements a rebalance superseded during the look-up are dropped.
        private func startingPositions(_ announced: [ConsumerEngine.Announcement], _ engine: ConsumerEngine)
            async throws -> [ConsumerEngine.Announcement]
        {
            guard let offsetsOnAssign = sequence.offsetsOnAssign, !announced.isEmpty else { return announced }
            let partitions = Set(announced.map(\.partition))
            let offsets = try await offsetsOnAssign(partitions).filter { partitions.contains($0.key) }
            return try await engine.start(announced, at: offsets)
        }
    }
}
