/// How `RestartSource`/`RestartFlow` back off between restarts: Akka's `RestartSettings`.
///
/// The n-th consecutive restart waits `minBackoff × 2ⁿ` capped at
/// `maxBackoff`, stretched by a random factor in `1 ... 1 + randomFactor`
/// (jitter, so many restarting streams do not retry in lockstep). After
/// `maxRestarts` restarts the last failure is passed on (`nil`: no limit).
/// A run that emitted an element and lasted at least `minBackoff` counts as
/// healthy: the next failure starts again from `minBackoff`.
public struct RestartSettings: Sendable, Hashable {
    /// The first backoff.
    public var minBackoff: Duration
    /// The longest backoff.
    public var maxBackoff: Duration
    /// Extra random delay, as a fraction of the backoff (0 = none).
    public var randomFactor: Double
    /// How many restarts in a row before giving up (`nil`: never give up).
    public var maxRestarts: Int?

    /// Backoff settings; validated when the stream starts.
    public init(minBackoff: Duration, maxBackoff: Duration, randomFactor: Double, maxRestarts: Int? = nil) {
        self.minBackoff = minBackoff
        self.maxBackoff = maxBackoff
        self.randomFactor = randomFactor
        self.maxRestarts = maxRestarts
    }

    /// The wait before restart number `restart` (0-based), with `random` in `0...1`.
    @inlinable public func backoff(forRestart restart: Int, random: Double) -> Duration {
        let doublings = Swift.min(restart, 62)
        var backoff = minBackoff
        for _ in 0..<doublings {
            backoff = backoff * 2
            if backoff >= maxBackoff { break }
        }
        backoff = Swift.min(backoff, maxBackoff)
        let jitter = 1 + randomFactor * Swift.max(0, Swift.min(1, random))
        return backoff * jitter
    }

    @usableFromInline func validate() throws(StreamKitError) {
        try requireArgument(minBackoff >= .zero, "RestartSettings(minBackoff: \(minBackoff)): must not be negative")
        try requireArgument(
            maxBackoff >= minBackoff,
            "RestartSettings(maxBackoff: \(maxBackoff)): must be at least minBackoff (\(minBackoff))")
        try requireArgument(randomFactor >= 0, "RestartSettings(randomFactor: \(randomFactor)): must not be negative")
        try requireArgument(
            (maxRestarts ?? 0) >= 0, "RestartSettings(maxRestarts: \(maxRestarts ?? 0)): must not be negative")
    }
}
