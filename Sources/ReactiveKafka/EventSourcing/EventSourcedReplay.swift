/// A key's state as stored in a snapshot: the state after every event of the key up to and
/// including the changelog record at `offset`.
struct EntitySnapshot<State: Sendable>: Sendable {
    var state: State
    var offset: Int64
}

/// Recovery of one changelog partition's entities: folds the partition's events, read from
/// where its snapshots leave off, onto those snapshots (or onto the initial state). Pure.
struct EventSourcedReplay<Key: Hashable & Sendable, State: Sendable, Event: Sendable> {
    private let initialState: State
    private let evolve: @Sendable (State, Event) -> State
    private var snapshots: [Key: EntitySnapshot<State>]
    private(set) var recovered: [Key: (state: State, eventsSinceSnapshot: Int)] = [:]
    /// The ledger of the partition after the replay: which events no snapshot holds.
    private(set) var ledger: SnapshotLedger<Key>

    /// Whether ``ledger`` books the events: only a stage that stores snapshots reads it.
    private let tracksLedger: Bool

    /// Starts from `snapshots`, replaying the events from `from` (the bound stored with them).
    init(
        initialState: State, evolve: @escaping @Sendable (State, Event) -> State,
        snapshots: [Key: EntitySnapshot<State>], from: Int64, tracksLedger: Bool = true
    ) {
        self.initialState = initialState
        self.evolve = evolve
        self.snapshots = snapshots
        self.tracksLedger = tracksLedger
        ledger = SnapshotLedger(end: from)
        for (key, snapshot) in snapshots { recovered[key] = (snapshot.state, 0) }
    }

    /// Applies the event of `key` at changelog `offset`, unless the key's snapshot already holds it.
    ///
    /// A recovery calls it for every event of the partition, through generic code that is not
    /// specialised: each dictionary look-up costs, so there are none for absent snapshots or
    /// an unread ledger (measured: `rkafka bench --scenario event-sourced-recovery`).
    mutating func apply(_ event: Event, of key: Key, at offset: Int64) {
        if !snapshots.isEmpty, let snapshot = snapshots[key], offset <= snapshot.offset { return }
        let current = recovered[key] ?? (initialState, 0)
        recovered[key] = (evolve(current.state, event), current.eventsSinceSnapshot + 1)
        if tracksLedger { ledger.committed(key, at: offset) }
    }
}
