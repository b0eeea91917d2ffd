import Foundation
import Synchronization

/// A consumer's current ``ConsumerHealth`` and the streams of its changes. Lives with the
/// control, so probes can read it and subscribe before the consumer starts.
final class ConsumerHealthHub: Sendable {
    private struct State {
        var current: ConsumerHealth = .starting
        var streams: [UUID: AsyncStream<ConsumerHealth>.Continuation] = [:]
        var finished = false
    }

    private let state = Mutex(State())

    var current: ConsumerHealth { state.withLock { $0.current } }

    /// The current health, then each change; finishes after the consumer's last change
    /// (``finish()``). Keeps only the newest value for an observer that falls behind.
    func subscribe() -> AsyncStream<ConsumerHealth> {
        let (stream, continuation) = AsyncStream<ConsumerHealth>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = UUID()
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { _ = $0.streams.removeValue(forKey: id) }
        }
        let finished = state.withLock { s -> Bool in
            if !s.finished { s.streams[id] = continuation }
            // Yielded under the lock: a change published meanwhile comes after it.
            continuation.yield(s.current)
            return s.finished
        }
        if finished { continuation.finish() }
        return stream
    }

    /// Publishes `health` to every observer.
    func publish(_ health: ConsumerHealth) {
        state.withLock { s in
            s.current = health
            for continuation in s.streams.values { continuation.yield(health) }
        }
    }

    /// The consumer closed: ends every observer's stream after its last value.
    func finish() {
        let streams = state.withLock { s in
            s.finished = true
            defer { s.streams.removeAll() }
            return Array(s.streams.values)
        }
        for continuation in streams { continuation.finish() }
    }
}
