/// Derives a consumer's ``ConsumerHealth`` from what its engine observes. Pure: no I/O,
/// no clock of its own; the engine thread feeds it observations with the time.
struct ConsumerHealthStateMachine {
    /// One look at the engine.
    struct Observation {
        /// The stream's failure, if it failed.
        var failure: KafkaError?
        /// The source completed or the consumer is closing or closed.
        var stopped: Bool
        /// The consumer had its partitions assigned at least once (always, for a manual assignment).
        var joined: Bool
        /// A JoinGroup was sent since the last rebalance callback.
        var rejoining: Bool
        /// Records wait for the stream: buffered, or emitted and holding the budget while it is paused.
        var recordsWaiting: Bool
        /// How many batches the stream took so far (progress when it changes).
        var batchesTaken: UInt64
    }

    let stallThreshold: Duration
    private(set) var health: ConsumerHealth = .starting
    private var lastBatchesTaken: UInt64 = 0
    /// Since when records have waited with no batch taken.
    private var waitingSince: ContinuousClock.Instant?

    init(stallThreshold: Duration) {
        self.stallThreshold = stallThreshold
    }

    /// Takes in `observation`; returns the new health when it changed.
    mutating func observe(_ observation: Observation, now: ContinuousClock.Instant) -> ConsumerHealth? {
        if observation.batchesTaken != lastBatchesTaken || !observation.recordsWaiting {
            lastBatchesTaken = observation.batchesTaken
            waitingSince = observation.recordsWaiting ? now : nil
        } else if waitingSince == nil {
            waitingSince = now
        }
        let next: ConsumerHealth
        if let failure = observation.failure {
            next = .failed(failure)
        } else if observation.stopped {
            next = .stopped
        } else if !observation.joined {
            next = .starting
        } else if observation.rejoining {
            next = .rebalancing
        } else if let since = waitingSince, now - since >= stallThreshold {
            next = .stalled
        } else {
            next = .consuming
        }
        // Failed and stopped are final.
        if case .failed = health { return nil }
        if health == .stopped, next != .stopped, observation.failure == nil { return nil }
        guard next != health else { return nil }
        health = next
        return next
    }
}
