import Foundation
import Synchronization

@testable import ReactiveKafka

/// An `OffsetCommitter` standing in for the consumer engine: records every
/// commit, optionally holds commits until the test releases them, and
/// optionally fails them.
final class FakeOffsetCommitter: OffsetCommitter {
    enum Call: Equatable, Sendable {
        /// `commit` (waits for the acknowledgement) with the next offsets to read.
        case commit([TopicPartition: Int64])
        /// `commitAndForget` with the next offsets to read.
        case forget([TopicPartition: Int64])

        var offsets: [TopicPartition: Int64] {
            switch self {
            case .commit(let o), .forget(let o): o
            }
        }
    }

    private struct State {
        var calls: [Call] = []
        var inFlight = 0
        var maxInFlight = 0
        var gated: Bool
        var released: Set<Int> = []
        var gateWaiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var failure: KafkaError?
    }

    private let state: Mutex<State>
    /// The index of every call, as it starts (one waiter at a time).
    private let started: AsyncStream<Int>
    private let startedContinuation: AsyncStream<Int>.Continuation

    /// With `gated`, every `commit` waits until ``release(_:)`` or ``releaseAll()``.
    init(gated: Bool = false, failure: KafkaError? = nil) {
        state = Mutex(State(gated: gated, failure: failure))
        (started, startedContinuation) = AsyncStream.makeStream()
    }

    var calls: [Call] { state.withLock { $0.calls } }
    var committed: [[TopicPartition: Int64]] { calls.map(\.offsets) }
    var maxInFlight: Int { state.withLock { $0.maxInFlight } }
    var inFlight: Int { state.withLock { $0.inFlight } }

    func commit(_ offsets: [TopicPartition: CommitPosition]) async throws(KafkaError) {
        let (index, gated, failure) = state.withLock { s in
            s.calls.append(.commit(offsets.mapValues(\.nextOffset)))
            s.inFlight += 1
            s.maxInFlight = max(s.maxInFlight, s.inFlight)
            return (s.calls.count - 1, s.gated, s.failure)
        }
        startedContinuation.yield(index)
        if gated {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let open = state.withLock { s -> Bool in
                    if s.released.contains(index) || !s.gated { return true }
                    s.gateWaiters[index] = c
                    return false
                }
                if open { c.resume() }
            }
        }
        state.withLock { $0.inFlight -= 1 }
        if let failure { throw failure }
    }

    func commitAndForget(_ offsets: [TopicPartition: CommitPosition]) {
        let index = state.withLock { s in
            s.calls.append(.forget(offsets.mapValues(\.nextOffset)))
            return s.calls.count - 1
        }
        startedContinuation.yield(index)
    }

    /// Lets the gated commit call `index` complete (now or when it arrives).
    func release(_ index: Int) {
        let waiter = state.withLock { s in
            s.released.insert(index)
            return s.gateWaiters.removeValue(forKey: index)
        }
        waiter?.resume()
    }

    /// Opens the gate for every commit, present and future.
    func releaseAll() {
        let waiters = state.withLock { s in
            s.gated = false
            defer { s.gateWaiters.removeAll() }
            return Array(s.gateWaiters.values)
        }
        for w in waiters { w.resume() }
    }

    /// Waits (within a generous bound) until at least `count` calls were made.
    func waitForCalls(_ count: Int, seconds: Double = 5) async throws {
        try await withTimeout(seconds: seconds) { [self] in
            if calls.count >= count { return }
            for await _ in started where calls.count >= count { return }
            throw TestTimeout()
        }
    }

    func offset(_ partition: Int32, _ offset: Int64, topic: String = "t") -> CommittableOffset {
        CommittableOffset(
            partitionOffset: PartitionOffset(
                groupId: "g", topicPartition: TopicPartition(topic, partition), offset: offset),
            committer: self)
    }
}

struct TestTimeout: Error, CustomStringConvertible {
    var description: String { "the operation did not finish within the test's bound" }
}

/// How much longer bounds that only guard against hangs may be: `REACTIVE_KAFKA_TEST_TIME_SCALE`
/// (`make sanitize` sets 4: instrumented code runs several times slower), 1 otherwise.
enum TestTimeScale {
    static let factor: Double = {
        guard let text = ProcessInfo.processInfo.environment["REACTIVE_KAFKA_TEST_TIME_SCALE"],
            let value = Double(text), value >= 1
        else { return 1 }
        return value
    }()
}

/// Runs `body`, failing with `TestTimeout` if it takes longer than `seconds` (times
/// ``TestTimeScale/factor``): a generous guard so a hang fails the test instead of stalling
/// the suite. On timeout `body` is cancelled but not awaited (it may be stuck for good).
func withTimeout<T: Sendable>(
    seconds: Double = 5,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let outcome = FirstOutcome<T>()
    return try await withCheckedThrowingContinuation { continuation in
        outcome.set(continuation)
        let work = Task {
            do { outcome.resume(.success(try await body())) } catch { outcome.resume(.failure(error)) }
        }
        let timer = Task {
            try await Task.sleep(for: .milliseconds(Int(seconds * TestTimeScale.factor * 1000)))
            outcome.resume(.failure(TestTimeout()))
            work.cancel()
        }
        outcome.onResume { timer.cancel() }
    }
}

/// Resumes a continuation with whichever outcome comes first.
private final class FirstOutcome<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var early: Result<T, any Error>?
        var done = false
        var cleanup: (@Sendable () -> Void)?
    }
    private let state = Mutex(State())

    func set(_ continuation: CheckedContinuation<T, any Error>) {
        state.withLock { $0.continuation = continuation }
    }

    func onResume(_ cleanup: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { s -> Bool in
            if s.done { return true }
            s.cleanup = cleanup
            return false
        }
        if runNow { cleanup() }
    }

    func resume(_ result: Result<T, any Error>) {
        let (continuation, cleanup) = state.withLock {
            s -> (CheckedContinuation<T, any Error>?, (@Sendable () -> Void)?) in
            guard !s.done else { return (nil, nil) }
            s.done = true
            defer {
                s.continuation = nil
                s.cleanup = nil
            }
            return (s.continuation, s.cleanup)
        }
        continuation?.resume(with: result)
        cleanup?()
    }
}

/// The value of `task`, within a generous bound; on timeout the task is cancelled too.
func valueWithin<T: Sendable>(_ task: Task<T, any Error>, seconds: Double = 5) async throws -> T {
    try await withTimeout(seconds: seconds) {
        try await withTaskCancellationHandler {
            try await task.value
        } onCancel: {
            task.cancel()
        }
    }
}

/// The completion of `task`, within a generous bound; on timeout the task is cancelled too.
func valueWithin(_ task: Task<Void, Never>, seconds: Double = 5) async throws {
    try await withTimeout(seconds: seconds) {
        await withTaskCancellationHandler {
            await task.value
        } onCancel: {
            task.cancel()
        }
    }
}

/// `elements`, then completion, as an async sequence.
func finiteStream<Element: Sendable>(_ elements: [Element]) -> AsyncStream<Element> {
    let (stream, continuation) = AsyncStream<Element>.makeStream()
    for element in elements { continuation.yield(element) }
    continuation.finish()
    return stream
}
