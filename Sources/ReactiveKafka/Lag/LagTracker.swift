/// Turns successive ``LagReading``s into ``LagSnapshot``s: keeps one ``LagEstimator`` window
/// per partition, fed with each reading's end offsets, and estimates every group's lag in
/// time from it. A pure value (no clock, no I/O) beside the collector's thin async shell.
///
/// A partition absent from a reading loses its window (its history would be stale by the
/// time it came back); a group absent from a reading, or left with no committed partition
/// whose end offset was read, is absent from the snapshot, so its series disappear.
public struct LagTracker: Sendable {
    /// Samples kept per partition.
    public let windowSize: Int
    /// The window of each partition seen in the last reading.
    public private(set) var windows: [TopicPartition: LagEstimator] = [:]

    /// A tracker keeping `windowSize` samples per partition.
    public init(windowSize: Int = 60) {
        self.windowSize = windowSize
    }

    /// Records `reading`'s end offsets as read at `now` and returns every group's lag.
    public mutating func update(_ reading: LagReading, at now: ContinuousClock.Instant) -> LagSnapshot {
        windows = windows.filter { reading.latest[$0.key] != nil }
        for (partition, end) in reading.latest {
            windows[partition, default: LagEstimator(capacity: windowSize)].record(endOffset: end, at: now)
        }
        let groups = reading.groups.compactMap { group -> ConsumerGroupLag? in
            let partitions = group.committed.compactMap { partition, committed -> GroupPartitionLag? in
                guard let end = reading.latest[partition], let window = windows[partition] else { return nil }
                return GroupPartitionLag(
                    topicPartition: partition, committedOffset: committed, endOffset: end,
                    timeLag: window.estimate(offset: committed, at: now), member: group.members[partition])
            }
            guard !partitions.isEmpty else { return nil }
            return ConsumerGroupLag(name: group.name, isSimpleConsumer: group.isSimpleConsumer, partitions: partitions)
        }
        let partitions = reading.latest.map { partition, end in
            PartitionOffsets(topicPartition: partition, earliest: reading.earliest[partition], latest: end)
        }
        return LagSnapshot(time: now, groups: groups, partitions: partitions)
    }
}
