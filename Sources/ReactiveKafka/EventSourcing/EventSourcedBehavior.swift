/// What an event-sourced entity is: its state before any event, how it decides which
/// events a command causes, and how an event changes its state.
///
/// `decide` may refuse a command with a typed `Rejection`; it causes no event then. `evolve`
/// is the only way state changes, so replaying an entity's events from its initial state
/// (or from a snapshot) gives back its state: both must be pure functions.
public struct EventSourcedBehavior<State: Sendable, Command: Sendable, Event: Sendable, Rejection: Error>: Sendable {
    /// The state of an entity that has no event yet.
    public let initialState: State
    /// The events `command` causes in `state` (none is fine), or a rejection.
    public let decide: @Sendable (State, Command) throws(Rejection) -> [Event]
    /// The state after `event`.
    public let evolve: @Sendable (State, Event) -> State

    /// A behaviour from its initial state, its decision and its evolution.
    public init(
        initialState: State,
        decide: @escaping @Sendable (State, Command) throws(Rejection) -> [Event],
        evolve: @escaping @Sendable (State, Event) -> State
    ) {
        self.initialState = initialState
        self.decide = decide
        self.evolve = evolve
    }
}
