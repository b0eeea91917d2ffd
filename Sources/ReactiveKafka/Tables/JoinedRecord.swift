/// A stream element and the table's value for its key: the element of `Source.join(_:key:)`
/// (`Value` is the table's value) and `Source.leftJoin(_:key:)` (`Value` is optional, `nil` when the
/// table has no row for the key).
public struct JoinedRecord<Record: Sendable, Value: Sendable>: Sendable {
    /// The stream's element.
    public var record: Record
    /// The table's value for the element's key when it was looked up.
    public var value: Value

    /// Pairs `record` with the table's `value`.
    public init(record: Record, value: Value) {
        self.record = record
        self.value = value
    }
}
