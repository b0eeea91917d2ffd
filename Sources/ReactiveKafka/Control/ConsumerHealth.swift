/// How a consumer is doing, for readiness and liveness probes: ``ConsumerControl/health``,
/// and its changes as they happen, ``ConsumerControl/healthChanges()``.
///
/// A readiness probe wants ``isReady`` (consuming); a liveness probe wants ``isLive``
/// (not failed, not stalled): a consumer that is starting or rebalancing is alive.
public enum ConsumerHealth: Sendable, Equatable, CustomStringConvertible {
    /// Created, not yet a member of its group with partitions assigned (or not yet pulled).
    case starting
    /// Joined and consuming: the stream takes the records that arrive (or none arrive).
    case consuming
    /// The group is rebalancing: the member has sent a JoinGroup and waits for its assignment.
    case rebalancing
    /// Records wait for the stream (buffered, or emitted and still held downstream), and it
    /// took none for longer than the settings' ``ConsumerSettings/stallThreshold``.
    case stalled
    /// The stream failed with this error.
    case failed(KafkaError)
    /// Stopped: the source completed, drains, or the consumer closed.
    case stopped

    /// Ready for traffic: consuming.
    public var isReady: Bool { self == .consuming }
    /// Alive: anything but failed or stalled.
    public var isLive: Bool {
        switch self {
        case .failed, .stalled: return false
        default: return true
        }
    }

    /// A rendering for logs and error messages.
    public var description: String {
        switch self {
        case .starting: return "starting"
        case .consuming: return "consuming"
        case .rebalancing: return "rebalancing"
        case .stalled: return "stalled"
        case .failed(let error): return "failed: \(error)"
        case .stopped: return "stopped"
        }
    }
}
