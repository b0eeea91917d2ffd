import DequeModule

/// The pending changes of one reader of a table's changes, conflated by key: the pure
/// state behind ``ChangeBuffer``.
///
/// A reader slower than the table never holds the table back and never loses a key's
/// latest value: while a key's change waits, a newer change of the same key replaces its
/// new value in place (keeping the oldest old value and its place in line). Memory is
/// bounded by the number of distinct keys waiting, at most the table's size.
struct ChangeBufferState<Key: Hashable & Sendable, Value: Sendable> {
    private var order: Deque<Key> = []
    private var pending: [Key: TableChange<Key, Value>] = [:]
    /// Set once the table ended: nil for a close, an error for a failure.
    private(set) var end: Result<Void, any Error>?

    var isEmpty: Bool { order.isEmpty }

    /// Adds `changes` (ignored once ended).
    mutating func offer(_ changes: [TableChange<Key, Value>]) {
        guard end == nil else { return }
        for change in changes {
            if let waiting = pending[change.key] {
                pending[change.key] = TableChange(
                    key: change.key, oldValue: waiting.oldValue, newValue: change.newValue)
            } else {
                pending[change.key] = change
                order.append(change.key)
            }
        }
    }

    /// Marks the end; the changes already pending are still delivered. The first end stays.
    mutating func finish(_ error: (any Error)?) {
        if end == nil { end = error.map { .failure($0) } ?? .success(()) }
    }

    /// The oldest pending change; nil when none waits.
    mutating func take() -> TableChange<Key, Value>? {
        guard let key = order.popFirst() else { return nil }
        return pending.removeValue(forKey: key)
    }
}
