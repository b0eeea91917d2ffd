import Foundation
import Synchronization

/// Fans rebalance events out to every observer's stream. Lives with the
/// control, so observers can subscribe before the consumer starts.
final class RebalanceEventHub: Sendable {
    private struct Observers {
        var streams: [UUID: AsyncStream<RebalanceEvent>.Continuation] = [:]
        /// The consumer closed: a stream asked for from now on is finished at once.
        var finished = false
    }

    private let observers = Mutex(Observers())

    /// A stream of the events from now on; it finishes when the consumer closes
    /// (at once, when it already has). Events are buffered for an observer that
    /// falls behind (rebalances are rare).
    func subscribe() -> AsyncStream<RebalanceEvent> {
        let (stream, continuation) = AsyncStream<RebalanceEvent>.makeStream()
        let id = UUID()
        continuation.onTermination = { [weak self] _ in
            self?.observers.withLock { _ = $0.streams.removeValue(forKey: id) }
        }
        let finished = observers.withLock { o -> Bool in
            if !o.finished { o.streams[id] = continuation }
            return o.finished
        }
        if finished { continuation.finish() }
        return stream
    }

    func emit(_ event: RebalanceEvent) {
        for continuation in observers.withLock({ Array($0.streams.values) }) { continuation.yield(event) }
    }

    /// Ends every observer's stream (the consumer closed).
    func finish() {
        let streams = observers.withLock { o in
            o.finished = true
            defer { o.streams.removeAll() }
            return Array(o.streams.values)
        }
        for continuation in streams { continuation.finish() }
    }
}
