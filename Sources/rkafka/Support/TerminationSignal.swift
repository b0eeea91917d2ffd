import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Suspends until the process receives one of `signals` (SIGINT and SIGTERM by default)
/// and returns it. Installed through dispatch signal sources, so nothing polls; the
/// signals' default action (exit) is disabled while waiting so that the caller can shut
/// down cleanly. A cancelled task still waits: shutdown is driven by the signal.
func waitForTerminationSignal(_ signals: [Int32] = [SIGINT, SIGTERM]) async -> Int32 {
    struct State {
        var continuation: CheckedContinuation<Int32, Never>?
        var received: Int32?
    }
    let state = Mutex(State())
    let queue = DispatchQueue(label: "rkafka.signals")
    var sources: [DispatchSourceSignal] = []
    for number in signals {
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
        source.setEventHandler {
            let continuation = state.withLock { s -> CheckedContinuation<Int32, Never>? in
                guard s.received == nil else { return nil }
                s.received = number
                defer { s.continuation = nil }
                return s.continuation
            }
            continuation?.resume(returning: number)
        }
        source.resume()
        sources.append(source)
    }
    // A signal may arrive before the continuation exists: then it is taken from `received`.
    let received = await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
        let early = state.withLock { s -> Int32? in
            if let received = s.received { return received }
            s.continuation = continuation
            return nil
        }
        if let early { continuation.resume(returning: early) }
    }
    for source in sources { source.cancel() }
    return received
}

/// The conventional name of a signal, for messages.
func signalName(_ number: Int32) -> String {
    switch number {
    case SIGINT: return "SIGINT"
    case SIGTERM: return "SIGTERM"
    default: return "signal \(number)"
    }
}
