/// The engine's part of its health (``ConsumerHealthStateMachine``): observed on its thread,
/// published to the control's hub when it changes.
extension ConsumerEngine {
    /// How often the loop looks at the health between events.
    static let healthCheckInterval: Duration = .milliseconds(100)

    func checkHealth(now: ContinuousClock.Instant) {
        guard let hub = configuration.health else { return }
        lastHealthCheck = now
        let joined = joinedOnce || !configuration.subscription.isGroupSubscription
        let rejoining = groupRequests.isRejoining
        let observation = state.withLock { s in
            ConsumerHealthStateMachine.Observation(
                failure: s.failure, stopped: s.phase != .running, joined: joined, rejoining: rejoining,
                recordsWaiting: !s.buffer.isEmpty || (s.buffer.isPaused && s.buffer.heldBytes > 0),
                batchesTaken: s.batchesTaken)
        }
        if let changed = healthMachine.observe(observation, now: now) {
            logger.debug("consumer health", metadata: ["health": "\(changed)"])
            hub.publish(changed)
        }
    }
}
