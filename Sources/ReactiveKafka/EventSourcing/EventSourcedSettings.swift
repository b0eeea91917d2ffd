import Foundation

/// Where an event-sourced stage writes its events, how it encodes them, and how it snapshots.
///
/// The changelog topic must have at least as many partitions as the input topic: the events
/// of an input record go to the changelog partition of the same number (co-partitioned), so
/// the member that owns an input partition recovers its keys from one changelog partition.
/// Use a topic of its own for each stage.
public struct EventSourcedSettings<Key: Hashable & Sendable, State: Sendable, Event: Sendable>: Sendable {
    /// The changelog topic.
    public var changelogTopic: String
    /// Encodes an entity key as the changelog record key (and in snapshots).
    public var keySerializer: Serializer<Key>
    /// Decodes a changelog record key.
    public var keyDeserializer: Deserializer<Key>
    /// Encodes an event as a changelog record value.
    public var eventSerializer: Serializer<Event>
    /// Decodes a changelog record value.
    public var eventDeserializer: Deserializer<Event>
    /// Encodes a state for a snapshot.
    public var stateSerializer: Serializer<State>
    /// Decodes a snapshot's state.
    public var stateDeserializer: Deserializer<State>
    /// A key's state is snapshotted every this many of its events (100 by default).
    public var snapshotEvery: Int = 100
    /// The SQLite file holding snapshots; nil keeps none and recovery replays the whole changelog partition.
    public var snapshotStorePath: String?

    /// Settings with every codec given.
    public init(
        changelogTopic: String,
        keySerializer: Serializer<Key>, keyDeserializer: Deserializer<Key>,
        eventSerializer: Serializer<Event>, eventDeserializer: Deserializer<Event>,
        stateSerializer: Serializer<State>, stateDeserializer: Deserializer<State>
    ) {
        self.changelogTopic = changelogTopic
        self.keySerializer = keySerializer
        self.keyDeserializer = keyDeserializer
        self.eventSerializer = eventSerializer
        self.eventDeserializer = eventDeserializer
        self.stateSerializer = stateSerializer
        self.stateDeserializer = stateDeserializer
    }

    /// These settings with a snapshot every `events` events of a key.
    public func withSnapshotEvery(_ events: Int) -> Self {
        var copy = self
        copy.snapshotEvery = events
        return copy
    }

    /// These settings keeping snapshots in the SQLite file at `path` (created when missing).
    public func withSnapshotStore(path: String) -> Self {
        var copy = self
        copy.snapshotStorePath = path
        return copy
    }

    /// Checks what the stage cannot run with.
    func validate() throws(EventSourcedError) {
        guard !changelogTopic.isEmpty else {
            throw EventSourcedError(.invalidSettings, "the changelog topic is empty; name the topic the events go to")
        }
        guard snapshotEvery > 0 else {
            throw EventSourcedError(
                .invalidSettings, "snapshotEvery must be at least 1, got \(snapshotEvery); use withSnapshotEvery(_:)")
        }
    }
}

extension EventSourcedSettings where Key == String, State: Codable, Event: Codable {
    /// Settings for string keys with events and states as JSON.
    public static func json(changelogTopic: String) -> Self {
        Self(
            changelogTopic: changelogTopic, keySerializer: .string, keyDeserializer: .string,
            eventSerializer: .json(), eventDeserializer: .json(), stateSerializer: .json(),
            stateDeserializer: .json())
    }
}
