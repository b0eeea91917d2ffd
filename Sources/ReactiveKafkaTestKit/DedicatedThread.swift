import Foundation
import ReactiveKafka
import Synchronization

/// Runs a blocking librdkafka call of the testkit on a thread of its own, so that async
/// tests never hold a thread of Swift's cooperative pool while a broker answers.
enum DedicatedThread {
    /// Runs `body` on a new thread and returns its result. When the calling task is
    /// cancelled, `onCancel` runs (to cut `body` short) and this throws
    /// `KafkaError.Kind.cancelled` at once; the thread finishes `body` (bounded by its own
    /// timeouts) and frees what it holds.
    static func run<T: Sendable>(
        name: String, onCancel: @escaping @Sendable () -> Void, _ body: @escaping @Sendable () throws(KafkaError) -> T
    ) async throws(KafkaError) -> T {
        let outcome = OnceContinuation<T>()
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, KafkaError>, Never>) in
                outcome.set(continuation)
                // Cancelled already: nothing is started.
                guard !Task.isCancelled, !outcome.isResumed else {
                    outcome.resume(.failure(KafkaError(.cancelled, "\(name): cancelled")))
                    return
                }
                let thread = Thread {
                    outcome.resume(Result { () throws(KafkaError) in try body() })
                }
                thread.name = name
                thread.start()
            }
        } onCancel: {
            onCancel()
            outcome.resume(.failure(KafkaError(.cancelled, "\(name): cancelled")))
        }
        return try result.get()
    }
}

/// A continuation resumed by whichever of the thread and the cancellation comes first.
private final class OnceContinuation<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Result<T, KafkaError>, Never>?
        var early: Result<T, KafkaError>?
        var resumed = false
    }

    private let state = Mutex(State())

    func set(_ continuation: CheckedContinuation<Result<T, KafkaError>, Never>) {
        let early = state.withLock { s -> Result<T, KafkaError>? in
            guard let early = s.early else {
                s.continuation = continuation
                return nil
            }
            s.early = nil
            return early
        }
        if let early { continuation.resume(returning: early) }
    }

    var isResumed: Bool { state.withLock { $0.resumed } }

    func resume(_ result: Result<T, KafkaError>) {
        let continuation = state.withLock { s -> CheckedContinuation<Result<T, KafkaError>, Never>? in
            guard !s.resumed else { return nil }
            s.resumed = true
            guard let continuation = s.continuation else {
                s.early = result
                return nil
            }
            s.continuation = nil
            return continuation
        }
        continuation?.resume(returning: result)
    }
}
