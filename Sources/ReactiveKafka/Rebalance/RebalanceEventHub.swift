import Foundation
import Synchronization

/// Fans rebalance events out to every observer's stream. Lives with the
/// control, so observers can subscribe before the consumer starts.
final class RebalanceEventHub: Sendable {
    private let observers = Mutex<[UUID: AsyncStream<RebalanceEvent>.Continuation]>([:])

    /// A stream of the events from now on; it finishes when the consumer closes.
    /// Events are buffered for an observer that falls behind (rebalances are rare).
    func subscribe() -> AsyncStream<RebalanceEvent> {
        let (stream, continuation) = AsyncStream<RebalanceEvent>.makeStream()
        let id = UUID()
        continuation.onTermination = { [weak self] _ in
            self?.observers.withLock { _ = $0.removeValue(forKey: id) }
        }
        observers.withLock { $0[id] = continuation }
        return stream
    }

    func emit(_ event: RebalanceEvent) {
        for continuation in observers.withLock({ Array($0.values) }) { continuation.yield(event) }
    }

    /// Ends every observer's stream (the consumer closed).
    func finish() {
        for continuation in observers.withLock({ Array($0.values) }) { continuation.finish() }
    }
}
