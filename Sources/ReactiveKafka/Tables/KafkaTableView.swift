/// Something to look keys up in and follow: a ``KafkaTable`` or a join of tables
/// (``JoinedKafkaTable``). Streams join it with ``StreamKit/Source/join(_:key:)``.
public protocol KafkaTableView<Key, Value>: Sendable {
    /// The table's key.
    associatedtype Key: Hashable & Sendable
    /// The table's value.
    associatedtype Value: Sendable

    /// The current value of `key`; nil when absent.
    func value(for key: Key) -> Value?
    /// Every row, as of one moment.
    func snapshot() -> [Key: Value]
    /// The changes from now on (see ``KafkaTableChanges`` for slow readers).
    func changes() -> KafkaTableChanges<Key, Value>
}

extension KafkaTableView {
    /// The current value of `key`; nil when absent.
    public subscript(key: Key) -> Value? { value(for: key) }
}
