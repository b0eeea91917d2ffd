/// The life of a testkit source (``ConsumerControlFactory/source(_:completion:)``) and of the
/// consumer its control stands in for, as a pure state machine: the shell
/// (``TestSourceStandIn``) holds it under a lock and does what it returns.
///
/// Like a Kafka source: it runs once; `ConsumerControl.stop()` completes it and leaves the
/// "consumer" open until `ConsumerControl.shutdown()`; a stream that ends any other way
/// (its last element with ``TestSourceCompletion/afterLastElement``, a failure, `break`,
/// cancellation) closes it; stopped before its first pull, it completes without emitting.
struct TestSourceStateMachine<Element, Waiter> {
    private enum Phase {
        /// Not pulled yet.
        case idle
        /// Emitting (or, out of elements, waiting for a stop).
        case running
        /// Completed by a stop; the "consumer" is open until shutdown.
        case stopped
        /// The "consumer" closed.
        case closed
    }

    private let elements: [Element]
    private let completion: TestSourceCompletion
    private var nextIndex = 0
    private var phase = Phase.idle
    private var claimed = false
    /// The stream's pull waiting for a stop (``TestSourceCompletion/whenStopped``).
    private var waiter: Waiter?

    init(elements: [Element], completion: TestSourceCompletion) {
        self.elements = elements
        self.completion = completion
    }

    /// True once the "consumer" closed.
    var isClosed: Bool { phase == .closed }

    enum ClaimAction: Equatable {
        /// The stream starts: report it (the control shows `ConsumerHealth.consuming`).
        case start
        /// Stopped or shut down before the first pull: the stream completes at once.
        case startStopped
        /// Another stream already ran this source.
        case alreadyClaimed
    }

    /// The stream's first pull.
    mutating func claim() -> ClaimAction {
        guard !claimed else { return .alreadyClaimed }
        claimed = true
        guard phase == .idle else { return .startStopped }
        phase = .running
        return .start
    }

    enum NextAction {
        case emit(Element)
        /// The stream completes; with `close`, the "consumer" closes too (report it).
        case finish(close: Bool)
        /// Wait for a stop or shutdown (``suspend(_:)``).
        case suspend
    }

    /// A pull of the stream, after ``claim()``.
    mutating func next() -> NextAction {
        switch phase {
        case .idle, .stopped, .closed:
            return .finish(close: false)
        case .running:
            if nextIndex < elements.count {
                defer { nextIndex += 1 }
                return .emit(elements[nextIndex])
            }
            switch completion {
            case .afterLastElement:
                phase = .closed
                return .finish(close: true)
            case .whenStopped:
                return .suspend
            }
        }
    }

    /// Parks the pull that got ``NextAction/suspend``; returns it when it must go on at once
    /// (a stop came in between).
    mutating func suspend(_ waiter: Waiter) -> Waiter? {
        guard phase == .running, nextIndex == elements.count, self.waiter == nil else { return waiter }
        self.waiter = waiter
        return nil
    }

    /// The parked pull, taken out because its task was cancelled.
    mutating func cancelWait() -> Waiter? {
        defer { waiter = nil }
        return waiter
    }

    struct StopAction {
        /// The parked pull to resume (it then completes).
        var resume: Waiter?
        /// The "consumer" closed: report it.
        var closed: Bool
    }

    /// `ConsumerControl.stop()`: completes the stream; before the first pull, the source
    /// will never start, so the "consumer" counts as closed (as a Kafka source's does).
    mutating func stop() -> StopAction {
        switch phase {
        case .idle:
            phase = .closed
            return StopAction(resume: nil, closed: true)
        case .running:
            phase = .stopped
            defer { waiter = nil }
            return StopAction(resume: waiter, closed: false)
        case .stopped, .closed:
            return StopAction(resume: nil, closed: false)
        }
    }

    /// `ConsumerControl.shutdown()`: completes the stream and closes the "consumer".
    mutating func shutdown() -> StopAction {
        guard phase != .closed else { return StopAction(resume: nil, closed: false) }
        phase = .closed
        defer { waiter = nil }
        return StopAction(resume: waiter, closed: true)
    }

    /// The stream's iterator is gone (completed, failed, cancelled, `break`): a running
    /// source's "consumer" closes with it; a stopped one's waits for shutdown. Returns
    /// whether it closed now.
    mutating func streamEnded() -> Bool {
        guard phase == .running else { return false }
        phase = .closed
        return true
    }
}

/// When a testkit source completes by itself.
public enum TestSourceCompletion: Sendable, Equatable {
    /// Once its last element is emitted; its "consumer" then closes, as a Kafka source's
    /// does when its stream ends.
    case afterLastElement
    /// Only when its control stops it or shuts it down, like a Kafka source, which waits
    /// for more records: use it to test draining (`DrainingControl.drainAndShutdown()`).
    case whenStopped
}
