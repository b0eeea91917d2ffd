/// Which committed events of a changelog partition no snapshot holds yet, so a replay knows
/// where to start: at the first event of any key not in its snapshot, or after the last event
/// when every key's snapshot is current. Pure.
///
/// A key with fewer than `snapshotEvery` events since its snapshot holds the start back to
/// its first such event: the replay reads from there and skips what other keys' snapshots hold.
struct SnapshotLedger<Key: Hashable & Sendable>: Sendable {
    /// Per key, the offset of its first committed event that no snapshot holds.
    private(set) var uncovered: [Key: Int64] = [:]
    /// Per key with uncovered events, the offset of its last committed event.
    private var last: [Key: Int64] = [:]
    /// The offset after the last committed event seen.
    private(set) var end: Int64

    init(end: Int64) { self.end = end }

    /// The event of `key` at `offset` is committed (events arrive in offset order).
    mutating func committed(_ key: Key, at offset: Int64) {
        if uncovered[key] == nil { uncovered[key] = offset }
        last[key] = offset
        end = max(end, offset + 1)
    }

    /// `key`'s snapshot, holding its events up to `offset`, is stored. When the key has later
    /// events the start stays at its first uncovered one (a replay skips what the snapshot holds).
    mutating func snapshotted(_ key: Key, through offset: Int64) {
        if let newest = last[key], newest <= offset {
            uncovered[key] = nil
            last[key] = nil
        }
        end = max(end, offset + 1)
    }

    /// Where a replay of the partition must start.
    var replayFrom: Int64 { uncovered.values.min() ?? end }
}
