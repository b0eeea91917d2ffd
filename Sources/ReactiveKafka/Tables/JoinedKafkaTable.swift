/// Two tables joined by key (a table–table join): a table whose value for a key is
/// `combine(left value, right value)`, updated whenever either side changes.
///
/// It holds no rows of its own: look-ups and snapshots read both sides as they are (each
/// side's snapshot is consistent by itself), and its ``changes()`` turn each side's
/// changes into joined ones, combining them with the other side's current value.
/// Create it with ``KafkaTableView/join(_:_:)`` or ``KafkaTableView/leftJoin(_:_:)``.
public struct JoinedKafkaTable<Left: KafkaTableView, Right: KafkaTableView, Value: Sendable>: KafkaTableView
where Left.Key == Right.Key {
    /// Keys are both sides' keys.
    public typealias Key = Left.Key

    let left: Left
    let right: Right
    /// The joined value; nil when the key has no joined row.
    let combine: @Sendable (Left.Value?, Right.Value?) -> Value?

    /// The joined value of `key`; nil when it has none.
    public func value(for key: Key) -> Value? {
        combine(left.value(for: key), right.value(for: key))
    }

    /// Every joined row (each side read at its own moment).
    public func snapshot() -> [Key: Value] {
        let l = left.snapshot()
        let r = right.snapshot()
        var rows: [Key: Value] = [:]
        for key in Set(l.keys).union(r.keys) {
            if let value = combine(l[key], r[key]) { rows[key] = value }
        }
        return rows
    }

    /// The joined changes from now on (conflated by key like a table's, see ``KafkaTableChanges``);
    /// they end when either side ends.
    public func changes() -> KafkaTableChanges<Key, Value> {
        let joined = ChangeBuffer<Key, Value>()
        let combine = combine
        let (left, right) = (left, right)
        let fromLeft = left.changes().subscription
        let fromRight = right.changes().subscription
        fromLeft.buffer.redirect(
            { [weak joined] changes in
                joined?.offer(Self.joinedChanges(changes) { key, side in combine(side, right.value(for: key)) })
            }, finish: { [weak joined] in joined?.finish($0) })
        fromRight.buffer.redirect(
            { [weak joined] changes in
                joined?.offer(Self.joinedChanges(changes) { key, side in combine(left.value(for: key), side) })
            }, finish: { [weak joined] in joined?.finish($0) })
        return KafkaTableChanges(
            subscription: ChangeSubscription(buffer: joined, upstream: [fromLeft, fromRight], unsubscribe: {}))
    }

    /// One side's changes as joined changes (those that change no joined row are dropped).
    private static func joinedChanges<Side>(
        _ changes: [TableChange<Key, Side>], _ join: (Key, Side?) -> Value?
    ) -> [TableChange<Key, Value>] {
        changes.compactMap { change in
            let old = join(change.key, change.oldValue)
            let new = join(change.key, change.newValue)
            if old == nil && new == nil { return nil }
            return TableChange(key: change.key, oldValue: old, newValue: new)
        }
    }
}

extension KafkaTableView {
    /// An inner join with `other`: a row for each key present in both, `joiner(value, otherValue)`.
    public func join<Other: KafkaTableView, Joined: Sendable>(
        _ other: Other, _ joiner: @escaping @Sendable (Value, Other.Value) -> Joined
    ) -> JoinedKafkaTable<Self, Other, Joined> where Other.Key == Key {
        JoinedKafkaTable(left: self, right: other) { l, r in
            guard let l, let r else { return nil }
            return joiner(l, r)
        }
    }

    /// A left join with `other`: a row for each key of this table, `joiner(value, otherValue or nil)`.
    public func leftJoin<Other: KafkaTableView, Joined: Sendable>(
        _ other: Other, _ joiner: @escaping @Sendable (Value, Other.Value?) -> Joined
    ) -> JoinedKafkaTable<Self, Other, Joined> where Other.Key == Key {
        JoinedKafkaTable(left: self, right: other) { l, r in l.map { joiner($0, r) } }
    }
}
