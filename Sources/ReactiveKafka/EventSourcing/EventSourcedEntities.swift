/// The live state of an event-sourced stage's entities: per key, command → events → new state,
/// and when a key's snapshot is due. Pure: the Kafka stage around it writes the events, and
/// restores entities from the changelog (``EventSourcedReplay``) when it must.
struct EventSourcedEntities<
    Key: Hashable & Sendable, State: Sendable, Command: Sendable, Event: Sendable, Rejection: Error
> {
    /// An entity's state and how many of its events no snapshot holds yet.
    struct Entity {
        var state: State
        var eventsSinceSnapshot: Int
    }

    /// What a command did.
    enum Outcome {
        /// `events` happened and the entity is now in `state`; `snapshotDue` when that state
        /// should be stored as the key's snapshot once the events are committed.
        case accepted(events: [Event], state: State, snapshotDue: Bool)
        /// `decide` refused the command: nothing changed.
        case rejected(Rejection)
    }

    let behavior: EventSourcedBehavior<State, Command, Event, Rejection>
    /// A key's snapshot is due once this many of its events are not in one.
    let snapshotEvery: Int
    private(set) var entities: [Key: Entity] = [:]

    init(behavior: EventSourcedBehavior<State, Command, Event, Rejection>, snapshotEvery: Int) {
        precondition(snapshotEvery > 0, "validated by EventSourcedSettings")
        self.behavior = behavior
        self.snapshotEvery = snapshotEvery
    }

    /// The state of `key` (the initial state when it has no event).
    func state(of key: Key) -> State { entities[key]?.state ?? behavior.initialState }

    /// Decides `command` for `key` and applies the events it causes.
    mutating func handle(_ command: Command, for key: Key) -> Outcome {
        var entity = entities[key] ?? Entity(state: behavior.initialState, eventsSinceSnapshot: 0)
        let events: [Event]
        do {
            events = try behavior.decide(entity.state, command)
        } catch {
            return .rejected(error)
        }
        guard !events.isEmpty else { return .accepted(events: [], state: entity.state, snapshotDue: false) }
        for event in events { entity.state = behavior.evolve(entity.state, event) }
        entity.eventsSinceSnapshot += events.count
        let due = entity.eventsSinceSnapshot >= snapshotEvery
        if due { entity.eventsSinceSnapshot = 0 }
        entities[key] = entity
        return .accepted(events: events, state: entity.state, snapshotDue: due)
    }

    /// Puts `key` in `state`, as recovered from a snapshot and the changelog.
    mutating func restore(_ key: Key, _ entity: Entity) { entities[key] = entity }

    /// Forgets the entities `isGone` names (the keys of a partition that moved or must be recovered).
    mutating func forget(where isGone: (Key) -> Bool) {
        entities = entities.filter { !isGone($0.key) }
    }
}
