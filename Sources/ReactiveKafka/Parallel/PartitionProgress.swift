import DequeModule

/// Which records of one partition a parallel source received and completed, as a pure
/// state machine (no I/O).
///
/// Records complete out of order, so the offset to commit is the first one not completed
/// (every record below it is done); records completed above it are told by
/// ``completedAbove`` (encoded into the commit's metadata by ``OffsetMetadataCodec``).
/// Offsets that are not records (transaction markers, compacted away) count as done.
///
/// One bit per offset between the committable offset and the last received: a stuck record
/// holds that span open, but memory stays one bit per offset read since.
struct PartitionProgress {
    /// The offset of bit 0 of `words[0]` (a multiple of 64 at or below `committable`).
    private var origin: Int64
    /// Bit set: done. Offsets below `committable` are all done; bits at or past `end` are 0.
    private var words: Deque<UInt64> = []
    /// The first offset not done: what to commit.
    private(set) var committable: Int64
    /// The offset after the last one received.
    private(set) var end: Int64
    /// The offset after the highest one completed (at least `committable`).
    private(set) var completedEnd: Int64
    /// Offsets a previous owner completed above its commit (read back from its metadata), not yet reached.
    private var previouslyDone: [Range<Int64>]

    /// Tracking starts at `start` (the committed offset); `previouslyDone` are offsets above it
    /// already completed (``OffsetMetadataCodec/decode(_:committed:)``).
    init(start: Int64, previouslyDone: [Range<Int64>] = []) {
        origin = start & ~63
        committable = start
        end = start
        completedEnd = start
        self.previouslyDone = previouslyDone.filter { $0.upperBound > start }.sorted { $0.lowerBound < $1.lowerBound }
    }

    /// Whether a record was received and not completed yet.
    var hasPending: Bool { committable < end }

    /// Whether `offset` is done.
    func isDone(_ offset: Int64) -> Bool {
        if offset < committable { return true }
        if offset >= end { return false }
        return bit(offset)
    }

    /// A record at `offset` was read (offsets increase). Returns false when it was already
    /// completed by a previous owner (marked done: skip it), true when it must be processed.
    /// An offset at or below the last received is ignored (false): a duplicate.
    mutating func received(_ offset: Int64) -> Bool {
        guard offset >= end else { return false }
        if committable == end && offset > end + 4096 {
            // Nothing pending and a long stretch of non-records: start afresh past it.
            origin = offset & ~63
            words.removeAll()
            committable = offset
            completedEnd = max(completedEnd, offset)
        } else {
            setDone(end..<offset)
        }
        end = offset + 1
        ensureCapacity(end)
        if wasDoneBefore(offset) {
            setDone(offset..<offset + 1)
            completedEnd = max(completedEnd, end)
            advance()
            return false
        }
        advance()
        return true
    }

    /// The record at `offset` completed. Returns whether the committable offset moved.
    @discardableResult
    mutating func complete(_ offset: Int64) -> Bool {
        guard offset >= committable, offset < end else { return false }
        setDone(offset..<offset + 1)
        completedEnd = max(completedEnd, offset + 1)
        let before = committable
        advance()
        return committable != before
    }

    /// Done offsets above the committable one, as ranges (ascending, disjoint, within
    /// `committable..<completedEnd`).
    var completedAbove: [Range<Int64>] {
        var ranges: [Range<Int64>] = []
        var o = committable
        var runStart: Int64? = nil
        while o < completedEnd {
            if bit(o) {
                if runStart == nil { runStart = o }
            } else if let s = runStart {
                ranges.append(s..<o)
                runStart = nil
            }
            o += 1
        }
        if let s = runStart { ranges.append(s..<completedEnd) }
        return ranges
    }

    private func wasDoneBefore(_ offset: Int64) -> Bool {
        previouslyDone.contains { $0.contains(offset) }
    }

    private mutating func advance() {
        while committable < end && bit(committable) { committable += 1 }
        if committable == end { completedEnd = max(completedEnd, end) }
        while origin + 64 <= committable, !words.isEmpty {
            words.removeFirst()
            origin += 64
        }
        if words.isEmpty { origin = committable & ~63 }
        if let first = previouslyDone.first, first.upperBound <= committable {
            previouslyDone.removeAll { $0.upperBound <= committable }
        }
    }

    private mutating func ensureCapacity(_ limit: Int64) {
        let needed = Int((limit - origin + 63) / 64)
        while words.count < needed { words.append(0) }
    }

    private func bit(_ offset: Int64) -> Bool {
        let i = Int((offset - origin) / 64)
        guard i >= 0, i < words.count else { return offset < origin }
        return words[i] & (1 << UInt64((offset - origin) % 64)) != 0
    }

    private mutating func setDone(_ range: Range<Int64>) {
        guard !range.isEmpty else { return }
        ensureCapacity(range.upperBound)
        var o = range.lowerBound
        while o < range.upperBound {
            let i = Int((o - origin) / 64)
            let shift = UInt64((o - origin) % 64)
            if shift == 0 && range.upperBound - o >= 64 {
                words[i] = .max
                o += 64
            } else {
                words[i] |= 1 << shift
                o += 1
            }
        }
    }
}
