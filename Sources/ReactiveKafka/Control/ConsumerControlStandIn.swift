/// What a ``ConsumerControl`` drives when no consumer stands behind it: the testkit's
/// fake source (`ConsumerControlFactory`), so that stream logic can be tested with a real
/// control (stop, shutdown, drain) and no cluster. Package access: not part of the API.
package protocol ConsumerControlStandIn: AnyObject, Sendable {
    /// Completes the source; the stand-in's "consumer" stays open until ``shutdown()``.
    func stop()
    /// Completes the source and closes the stand-in's "consumer". Idempotent.
    func shutdown() async
    /// True once the stand-in's "consumer" closed.
    var isShutdown: Bool { get }
    /// Called once, by the control it is given to: `report` hears when the source first
    /// pulls (``ConsumerControlStandInEvent/started``) and when the "consumer" closes
    /// (``ConsumerControlStandInEvent/closed``, at once if it already has).
    func attach(_ report: @escaping @Sendable (ConsumerControlStandInEvent) -> Void)
}

/// What a ``ConsumerControlStandIn`` tells its control, which publishes it as health.
package enum ConsumerControlStandInEvent: Sendable {
    /// The source's stream first pulled: the control reports ``ConsumerHealth/consuming``.
    case started
    /// The "consumer" closed: ``ConsumerHealth/stopped``; health and rebalance streams finish.
    case closed
}
