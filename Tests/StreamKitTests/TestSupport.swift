import Synchronization

@testable import StreamKit

struct TestError: Error, Equatable { var tag: Int = 0 }

/// Thread-safe counters for observing what an operator did to its upstream.
final class Probe: Sendable {
    private struct State {
        var pulled = 0
        var iteratorsAlive = 0
        var cancelled = false
        var inFlight = 0
        var maxInFlight = 0
    }
    private let state = Mutex(State())

    var pulled: Int { state.withLock { $0.pulled } }
    var iteratorsAlive: Int { state.withLock { $0.iteratorsAlive } }
    var sawCancellation: Bool { state.withLock { $0.cancelled } }
    var maxInFlight: Int { state.withLock { $0.maxInFlight } }
    var inFlight: Int { state.withLock { $0.inFlight } }

    func pull() { state.withLock { $0.pulled += 1 } }
    func iteratorCreated() { state.withLock { $0.iteratorsAlive += 1 } }
    func iteratorGone() { state.withLock { $0.iteratorsAlive -= 1 } }
    func cancelled() { state.withLock { $0.cancelled = true } }
    func enter() {
        state.withLock {
            $0.inFlight += 1
            $0.maxInFlight = max($0.maxInFlight, $0.inFlight)
        }
    }
    func leave() { state.withLock { $0.inFlight -= 1 } }
}

/// 0..<count as an async sequence that reports pulls to a probe, can fail at
/// `failAt`, and can hang (until cancelled) at `hangAt`.
struct ProbedSequence: AsyncSequence, Sendable {
    typealias Element = Int
    let count: Int
    let probe: Probe
    var failAt: Int? = nil
    var hangAt: Int? = nil

    final class Iterator: AsyncIteratorProtocol {
        let source: ProbedSequence
        var index = 0
        init(_ source: ProbedSequence) {
            self.source = source
            source.probe.iteratorCreated()
        }
        deinit { source.probe.iteratorGone() }

        func next() async throws -> Int? {
            if index == source.hangAt {
                let never = AsyncStream<Int> { _ in }
                for await _ in never {}
                source.probe.cancelled()
                throw CancellationError()
            }
            if index == source.failAt { throw TestError(tag: index) }
            guard index < source.count else { return nil }
            source.probe.pull()
            defer { index += 1 }
            return index
        }
    }

    func makeAsyncIterator() -> Iterator { Iterator(self) }
}

/// Suspends callers until `count` of them have arrived, then releases them all.
final class Barrier: Sendable {
    private let state: Mutex<(count: Int, waiting: [UnsafeContinuation<Void, Never>])>
    init(count: Int) { state = Mutex((count, [])) }

    func arrive() async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let release: [UnsafeContinuation<Void, Never>] = state.withLock { state in
                state.waiting.append(continuation)
                if state.waiting.count >= state.count {
                    defer { state.waiting = [] }
                    return state.waiting
                }
                return []
            }
            for waiter in release { waiter.resume() }
        }
    }
}

/// A one-shot signal a test can await.
final class Signal: Sendable {
    private let state = Mutex<(fired: Bool, waiting: [UnsafeContinuation<Void, Never>])>((false, []))
    func fire() {
        let waiting = state.withLock { state -> [UnsafeContinuation<Void, Never>] in
            state.fired = true
            defer { state.waiting = [] }
            return state.waiting
        }
        for waiter in waiting { waiter.resume() }
    }
    func wait() async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let fired = state.withLock { state -> Bool in
                if state.fired { return true }
                state.waiting.append(continuation)
                return false
            }
            if fired { continuation.resume() }
        }
    }
}

/// Waits, with a bounded number of yields, until `condition` holds: for
/// effects that happen on other tasks right after the one under test returns
/// (a cancelled upstream noticing). Never sleeps.
func eventually(_ condition: () -> Bool, yields: Int = 100_000) async -> Bool {
    for _ in 0..<yields {
        if condition() { return true }
        await Task.yield()
    }
    return condition()
}

extension AsyncSequence {
    /// Every element, in order (finite sequences only).
    func collect() async throws -> [Element] {
        var all: [Element] = []
        for try await element in self { all.append(element) }
        return all
    }
}
