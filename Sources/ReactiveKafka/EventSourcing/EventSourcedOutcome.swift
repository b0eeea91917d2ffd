/// What one input command did to its entity. An event-sourced flow hands it to its `output`
/// function (to build the records to write with the events) and emits it once the
/// transaction holding them is committed.
public struct EventSourcedOutcome<Key: Sendable, State: Sendable, Event: Sendable, Rejection: Error>: Sendable {
    /// The entity's key (the input record's key).
    public let key: Key
    /// The events the command caused, in order (none when rejected).
    public let events: [Event]
    /// The entity's state after them.
    public let state: State
    /// Why `decide` refused the command, if it did.
    public let rejection: Rejection?
    /// The input record's position.
    public let input: PartitionOffset
}
