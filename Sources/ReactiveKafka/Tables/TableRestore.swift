/// When a table's initial restore is complete: the pure state behind ``KafkaTable/ready()``.
///
/// The restore covers the partitions of the table's first assignment (all of them for a
/// global table). Each is restored once it has read up to the end offset (high watermark)
/// seen when it was assigned — or once the consumer reports the partition's end at or past
/// that offset and the table applied every record read before it (the log ends with
/// transaction markers, which no record reaches). A partition revoked meanwhile no longer counts.
struct TableRestore: Sendable {
    private(set) var isComplete = false
    private var assignmentSeen = false
    /// Assigned, but the end offsets are not known yet.
    private var pending: Set<Int32> = []
    /// The end offset each partition still has to reach.
    private var targets: [Int32: Int64] = [:]
    /// The offset each restoring partition has been applied up to.
    private var applied: [Int32: Int64] = [:]
    /// For a partition whose end was reported: the offset after the last record read before it.
    private var endAfter: [Int32: Int64] = [:]

    /// The first assignment is `partitions` (possibly none); true if that completes the restore.
    mutating func assigned(_ partitions: Set<Int32>) -> Bool {
        guard !isComplete, !assignmentSeen else { return false }
        assignmentSeen = true
        pending = partitions
        return check()
    }

    /// `partitions` start at `start` and must reach `end`; true if that completes the restore.
    mutating func positioned(start: [Int32: Int64], end: [Int32: Int64]) -> Bool {
        guard !isComplete else { return false }
        if !assignmentSeen {
            assignmentSeen = true
            pending = Set(start.keys)
        }
        for (partition, first) in start where pending.contains(partition) {
            pending.remove(partition)
            if let last = end[partition], first < last {
                targets[partition] = last
                applied[partition] = first
            }
        }
        return check()
    }

    /// The partitions of a batch read up to `positions`; true if that completes the restore.
    mutating func reached(_ positions: [Int32: Int64]) -> Bool {
        guard !isComplete, !targets.isEmpty else { return false }
        for (partition, next) in positions where targets[partition] != nil {
            applied[partition] = max(applied[partition] ?? next, next)
            settle(partition)
        }
        return check()
    }

    /// The consumer reached the end (`end`) of `partition`, after reading records up to
    /// `afterLastRecord` (nil: none since it was positioned); true if that completes the restore.
    mutating func ended(_ partition: Int32, at end: Int64, afterLastRecord: Int64?) -> Bool {
        guard !isComplete, let target = targets[partition], end >= target else { return false }
        endAfter[partition] = afterLastRecord ?? 0
        settle(partition)
        return check()
    }

    /// Drops `partition`'s target once it is restored.
    private mutating func settle(_ partition: Int32) {
        guard let target = targets[partition], let at = applied[partition] else { return }
        if at >= target || endAfter[partition].map({ at >= $0 }) == true {
            targets[partition] = nil
            applied[partition] = nil
            endAfter[partition] = nil
        }
    }

    /// `partitions` were revoked; true if that completes the restore.
    mutating func revoked(_ partitions: Set<Int32>) -> Bool {
        guard !isComplete else { return false }
        pending.subtract(partitions)
        for partition in partitions {
            targets[partition] = nil
            applied[partition] = nil
            endAfter[partition] = nil
        }
        return check()
    }

    private mutating func check() -> Bool {
        guard assignmentSeen, pending.isEmpty, targets.isEmpty else { return false }
        isComplete = true
        return true
    }
}
