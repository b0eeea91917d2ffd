import ReactiveKafka
import Synchronization

/// The shell around ``TestSourceStateMachine``: what a testkit source's iterator pulls from
/// and its ``ConsumerControl`` stops and shuts down.
final class TestSourceStandIn<Element: Sendable>: ConsumerControlStandIn {
    private struct State {
        var machine: TestSourceStateMachine<Element, CheckedContinuation<Void, Never>>
        var report: (@Sendable (ConsumerControlStandInEvent) -> Void)?
        /// A close that happened before the control attached, reported when it does.
        var closedBeforeAttach = false
    }

    private let state: Mutex<State>

    init(elements: [Element], completion: TestSourceCompletion) {
        state = Mutex(State(machine: TestSourceStateMachine(elements: elements, completion: completion)))
    }

    func attach(_ report: @escaping @Sendable (ConsumerControlStandInEvent) -> Void) {
        let closed = state.withLock { s -> Bool in
            s.report = report
            return s.closedBeforeAttach
        }
        if closed { report(.closed) }
    }

    var isShutdown: Bool { state.withLock { $0.machine.isClosed } }

    func stop() {
        let action = state.withLock { $0.machine.stop() }
        act(on: action)
    }

    func shutdown() async {
        let action = state.withLock { $0.machine.shutdown() }
        act(on: action)
    }

    private func act(on action: TestSourceStateMachine<Element, CheckedContinuation<Void, Never>>.StopAction) {
        action.resume?.resume()
        if action.closed { report(.closed) }
    }

    private func report(_ event: ConsumerControlStandInEvent) {
        let report = state.withLock { s -> (@Sendable (ConsumerControlStandInEvent) -> Void)? in
            if s.report == nil, case .closed = event { s.closedBeforeAttach = true }
            return s.report
        }
        report?(event)
    }

    /// The first pull of a stream: whether it runs (false: it completes at once).
    func claim() throws(KafkaError) -> Bool {
        switch state.withLock({ $0.machine.claim() }) {
        case .start:
            report(.started)
            return true
        case .startStopped:
            return false
        case .alreadyClaimed:
            throw KafkaError(
                .illegalState,
                "this test source is already running: a source can be run once, like a Kafka source; make a new one for another stream"
            )
        }
    }

    /// The next element, nil once the stream completes; throws `CancellationError` when
    /// the task is cancelled while it waits for a stop.
    func next() async throws -> Element? {
        while true {
            switch state.withLock({ $0.machine.next() }) {
            case .emit(let element):
                return element
            case .finish(let close):
                if close { report(.closed) }
                return nil
            case .suspend:
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                        let resumeNow = state.withLock { $0.machine.suspend(continuation) }
                        resumeNow?.resume()
                    }
                } onCancel: {
                    state.withLock { $0.machine.cancelWait() }?.resume()
                }
                try Task.checkCancellation()
            }
        }
    }

    /// The stream's iterator is gone: a source that was not stopped closes its "consumer".
    func streamEnded() {
        if state.withLock({ $0.machine.streamEnded() }) { report(.closed) }
    }
}

/// Tells the source when its stream's iterator goes, however the stream ended.
final class TestSourceLease<Element: Sendable>: Sendable {
    private let source: TestSourceStandIn<Element>

    init(_ source: TestSourceStandIn<Element>) { self.source = source }

    deinit { source.streamEnded() }
}
