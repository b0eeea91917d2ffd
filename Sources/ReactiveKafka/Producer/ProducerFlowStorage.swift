import Synchronization

/// The thin concurrent shell around ``ProducerFlowStateMachine``: one lock,
/// one continuation for the pump, one for the downstream. Also the run's
/// ``DeliveryReceiver``, so delivery reports reach it one batch at a time.
final class ProducerFlowStorage<Key: Sendable, Value: Sendable, PassThrough: Sendable>: DeliveryReceiver, @unchecked Sendable {
    typealias Machine = ProducerFlowStateMachine<Key, Value, PassThrough>

    private struct Shared {
        var machine: Machine
        var downstream: UnsafeContinuation<Void, Never>?
        var pump: UnsafeContinuation<Void, Never>?

        mutating func take(_ wakeups: Machine.Wakeups) -> (UnsafeContinuation<Void, Never>?, UnsafeContinuation<Void, Never>?) {
            var d: UnsafeContinuation<Void, Never>?
            var p: UnsafeContinuation<Void, Never>?
            if wakeups.downstream { d = downstream; downstream = nil }
            if wakeups.pump { p = pump; pump = nil }
            return (d, p)
        }
    }

    private let shared: Mutex<Shared>

    init(parallelism: Int) {
        shared = Mutex(Shared(machine: Machine(parallelism: parallelism)))
    }

    // MARK: DeliveryReceiver (poll thread)

    func deliver(_ reports: UnsafeBufferPointer<DeliveryReport>) {
        let (d, p) = shared.withLock { s in s.take(s.machine.deliver(reports)) }
        d?.resume()
        p?.resume()
    }

    func fail(_ error: KafkaError) {
        let (d, p) = shared.withLock { s in s.take(s.machine.engineFailed(error)) }
        d?.resume()
        p?.resume()
    }

    // MARK: Pump

    /// Waits until the pump may pull another message; false when it must stop.
    func waitForCapacity() async -> Bool {
        while true {
            var action = Machine.CapacityAction.suspend
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                action = shared.withLock { s in
                    let action = s.machine.pumpWantsCapacity()
                    if action == .suspend { s.pump = continuation }
                    return action
                }
                if action != .suspend { continuation.resume() }
            }
            switch action {
            case .proceed: return true
            case .stop: return false
            case .suspend: continue  // resumed: ask again
            }
        }
    }

    /// Records `message` as in flight before its records are produced.
    func register(_ message: Machine.Message, recordCount: Int) -> Machine.RegisterAction {
        let (action, d) = shared.withLock { s -> (Machine.RegisterAction, UnsafeContinuation<Void, Never>?) in
            let action = s.machine.register(message, recordCount: recordCount)
            if case .produce(_, _, true) = action {
                defer { s.downstream = nil }
                return (action, s.downstream)
            }
            return (action, nil)
        }
        d?.resume()
        return action
    }

    func recordRejected(sequence: UInt64, index: Int, error: KafkaError) {
        let d = shared.withLock { s -> UnsafeContinuation<Void, Never>? in
            guard s.machine.recordRejected(sequence: sequence, index: index, error: error) else { return nil }
            defer { s.downstream = nil }
            return s.downstream
        }
        d?.resume()
    }

    func pumpFinished(error: (any Error)?) {
        let d = shared.withLock { s -> UnsafeContinuation<Void, Never>? in
            guard s.machine.pumpFinished(error: error) else { return nil }
            defer { s.downstream = nil }
            return s.downstream
        }
        d?.resume()
    }

    // MARK: Downstream

    enum Next {
        case emit
        case finish
        case fail(any Error)
        case cancelled
    }

    /// Gives back the `returned` results of the previous batch and waits until
    /// more are ready (appended to `buffer`), the run ends, or the task is cancelled.
    func next(returned: Int, into buffer: inout [Machine.Result]) async -> Next {
        var returned = returned
        while true {
            if Task.isCancelled { return cancel() }
            var step: Next?
            await withTaskCancellationHandler {
                await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                    var resumeNow = true
                    let pump = shared.withLock { s -> UnsafeContinuation<Void, Never>? in
                        let resumePump: Bool
                        switch s.machine.next(returned: returned, into: &buffer) {
                        case .emit(let r): step = .emit; resumePump = r
                        case .finish(let r): step = .finish; resumePump = r
                        case .fail(let e, let r): step = .fail(e); resumePump = r
                        case .suspend(let r):
                            resumePump = r
                            // Checked under the lock the cancellation handler takes: no lost wake-up.
                            if !Task.isCancelled {
                                s.downstream = continuation
                                resumeNow = false
                            }
                        }
                        guard resumePump else { return nil }
                        defer { s.pump = nil }
                        return s.pump
                    }
                    pump?.resume()
                    if resumeNow { continuation.resume() }
                }
            } onCancel: {
                let d = shared.withLock { s -> UnsafeContinuation<Void, Never>? in
                    defer { s.downstream = nil }
                    return s.downstream
                }
                d?.resume()
            }
            returned = 0
            if let step { return step }
        }
    }

    /// The downstream is gone (cancelled or dropped): stop the pump.
    func cancelDownstream() { _ = cancel() }

    private func cancel() -> Next {
        let p = shared.withLock { s -> UnsafeContinuation<Void, Never>? in
            s.downstream = nil
            let wakeups = s.machine.downstreamCancelled()
            return s.take(wakeups).1
        }
        p?.resume()
        return .cancelled
    }
}
