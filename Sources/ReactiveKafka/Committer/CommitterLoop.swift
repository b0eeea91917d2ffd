import Synchronization

/// The batching state of a committer, as a pure state machine (no I/O):
/// which offsets form the next batch and when it is due.
struct CommitterBatchingStateMachine {
    let settings: CommitterSettings
    private(set) var batch = CommittableOffsetBatch()
    /// With `nextOffsetObserved`: the latest offset per partition, held back
    /// until a later offset of the same partition arrives.
    private var held: [TopicPartition: CommittableOffset] = [:]
    private(set) var batchStarted: ContinuousClock.Instant?

    init(settings: CommitterSettings) { self.settings = settings }

    /// Adds an observed offset; returns a batch if it is now full.
    mutating func observe(_ offset: CommittableOffset, now: ContinuousClock.Instant) -> CommittableOffsetBatch? {
        switch settings.when {
        case .offsetFirstObserved:
            add(offset, now: now)
        case .nextOffsetObserved:
            let key = offset.partitionOffset.topicPartition
            if let previous = held[key] {
                if offset.partitionOffset.offset > previous.partitionOffset.offset {
                    add(previous, now: now)
                    held[key] = offset
                }
            } else {
                // Held offsets start no batch: nothing is committable until a successor arrives,
                // so a deadline for them could never be met (and the timer would spin on it).
                held[key] = offset
            }
        }
        return batch.batchSize >= settings.maxBatch ? take() : nil
    }

    /// The batch if its first offset is at least `maxInterval` old.
    mutating func due(now: ContinuousClock.Instant) -> CommittableOffsetBatch? {
        guard let started = batchStarted, now - started >= settings.maxInterval else { return nil }
        return batch.isEmpty ? nil : take()
    }

    /// When the next batch becomes due, if anything is waiting.
    var deadline: ContinuousClock.Instant? { batchStarted.map { $0 + settings.maxInterval } }

    /// Everything held, including offsets held back by `nextOffsetObserved` (upstream ended).
    mutating func flushAll() -> CommittableOffsetBatch? {
        for offset in held.values { batch.add(offset) }
        held.removeAll()
        return batch.isEmpty ? nil : take()
    }

    private mutating func add(_ offset: CommittableOffset, now: ContinuousClock.Instant) {
        if batchStarted == nil { batchStarted = now }
        batch.add(offset)
    }

    private mutating func take() -> CommittableOffsetBatch {
        defer {
            batch = CommittableOffsetBatch()
            batchStarted = nil
        }
        return batch
    }
}

/// Runs a committer over an upstream of offsets: the shared engine of
/// ``Committer``'s sink and flows.
///
/// The upstream is read in the calling task. A timer task flushes the batch
/// when `maxInterval` passes without it filling; commits run concurrently, at
/// most `parallelism` at once, and the first failed commit fails the run.
/// Every task started here is awaited before `run` returns.
struct CommitterLoop: Sendable {
    let settings: CommitterSettings

    func run<Upstream: AsyncSequence & Sendable>(
        _ upstream: Upstream,
        onCommitted: @escaping @Sendable (CommittableOffsetBatch) -> Void
    ) async throws where Upstream.Element == CommittableOffset {
        try settings.validate()
        let run = CommitterRun(settings: settings, onCommitted: onCommitted)
        // Sleeps until the current batch is due (a deadline, not a poll), or until offsets arrive.
        let timer = Task { await run.flushOnTime() }
        var upstreamError: (any Error)?
        do {
            for try await offset in upstream {
                try await run.observe(offset)
            }
        } catch {
            upstreamError = error
        }
        timer.cancel()
        run.limiter.signalActivity()
        await timer.value
        // Completion and failure alike commit what is held (emergency commit), then finish.
        try await run.finish(upstreamError: upstreamError)
    }
}

/// The shared state of one committer run: batching, commits in flight, first failure.
final class CommitterRun: Sendable {
    private struct State {
        var batching: CommitterBatchingStateMachine
        var commits: [UInt64: Task<Void, Never>] = [:]
        var nextCommit: UInt64 = 0
        var failure: (any Error)?
    }

    private let state: Mutex<State>
    private let settings: CommitterSettings
    private let onCommitted: @Sendable (CommittableOffsetBatch) -> Void
    let limiter: CommitLimiter

    init(settings: CommitterSettings, onCommitted: @escaping @Sendable (CommittableOffsetBatch) -> Void) {
        self.settings = settings
        self.onCommitted = onCommitted
        self.state = Mutex(State(batching: CommitterBatchingStateMachine(settings: settings)))
        self.limiter = CommitLimiter(limit: settings.parallelism)
    }

    func observe(_ offset: CommittableOffset) async throws {
        let (full, failure) = state.withLock { s in (s.batching.observe(offset, now: .now), s.failure) }
        if let failure { throw failure }
        if let full { await startCommit(full) } else { limiter.signalActivity() }
    }

    func flushOnTime() async {
        while !Task.isCancelled {
            if let deadline = state.withLock({ $0.batching.deadline }) {
                do { try await Task.sleep(until: deadline, clock: .continuous) } catch { return }
                if let batch = state.withLock({ $0.batching.due(now: .now) }) { await startCommit(batch) }
            } else {
                await limiter.waitForActivity()
            }
        }
    }

    func finish(upstreamError: (any Error)?) async throws {
        if let last = state.withLock({ $0.batching.flushAll() }) { await startCommit(last) }
        while let pending = state.withLock({ $0.commits.values.first }) { await pending.value }
        if let upstreamError { throw upstreamError }
        if let failure = state.withLock({ $0.failure }) { throw failure }
    }

    private func startCommit(_ batch: CommittableOffsetBatch) async {
        // Waiting for a slot is the back-pressure on the upstream.
        await limiter.acquire()
        state.withLock { s in
            let id = s.nextCommit
            s.nextCommit += 1
            s.commits[id] = Task { await self.commit(batch, id: id) }
        }
    }

    private func commit(_ batch: CommittableOffsetBatch, id: UInt64) async {
        do {
            switch settings.delivery {
            case .waitForAck: try await batch.commit()
            case .sendAndForget: batch.commitAndForget()
            }
            onCommitted(batch)
        } catch {
            state.withLock { if $0.failure == nil { $0.failure = error } }
        }
        state.withLock { _ = $0.commits.removeValue(forKey: id) }
        limiter.release()
    }
}

/// Bounds the commits in flight and wakes the idle timer when offsets arrive.
final class CommitLimiter: Sendable {
    private struct State {
        var inFlight = 0
        var permitWaiters: [UnsafeContinuation<Void, Never>] = []
        var activityWaiter: UnsafeContinuation<Void, Never>?
        /// Activity signalled while the timer was not yet waiting: its next wait returns at once.
        var activityPending = false
    }

    private let limit: Int
    private let state = Mutex(State())

    init(limit: Int) { self.limit = limit }

    /// Waits until fewer than `limit` commits are in flight, then takes a slot.
    func acquire() async {
        await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
            let granted = state.withLock { s -> Bool in
                if s.inFlight < limit { s.inFlight += 1; return true }
                s.permitWaiters.append(c)
                return false
            }
            if granted { c.resume() }
        }
    }

    func release() {
        let next = state.withLock { s -> UnsafeContinuation<Void, Never>? in
            if s.permitWaiters.isEmpty { s.inFlight -= 1; return nil }
            return s.permitWaiters.removeFirst()  // the slot passes to the waiter
        }
        next?.resume()
    }

    /// Suspends the timer until an offset arrives (cancellation-safe).
    func waitForActivity() async {
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if Task.isCancelled || s.activityPending {
                        s.activityPending = false
                        return true
                    }
                    s.activityWaiter = c
                    return false
                }
                if resumeNow { c.resume() }
            }
        } onCancel: {
            signalActivity()
        }
    }

    func signalActivity() {
        let waiter = state.withLock { s -> UnsafeContinuation<Void, Never>? in
            defer { s.activityWaiter = nil }
            if s.activityWaiter == nil { s.activityPending = true }
            return s.activityWaiter
        }
        waiter?.resume()
    }
}
