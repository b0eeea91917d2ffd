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

    /// The batch as it is, now (a revoke waits for it); offsets held back by
    /// `nextOffsetObserved` stay held, their successors may not be processed yet.
    mutating func takeNow() -> CommittableOffsetBatch? {
        batch.isEmpty ? nil : take()
    }

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
/// The upstream is read in a task of its own, so that a failed commit stops the
/// run at once even while the upstream is idle. A timer task flushes the
/// batch when `maxInterval` passes without it filling; commits run
/// concurrently, at most `parallelism` at once, and are reported in the order
/// their batches were formed; the first failed commit fails the run.
/// Cancelling the calling task cancels the upstream read. Every task started
/// here is awaited before `run` returns.
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
        let reader = Task { () -> (any Error)? in
            do {
                for try await offset in upstream {
                    try await run.observe(offset)
                }
                return nil
            } catch {
                return error
            }
        }
        run.onFailure { reader.cancel() }
        let upstreamError = await withTaskCancellationHandler {
            await reader.value
        } onCancel: {
            reader.cancel()
        }
        let stoppedByCommitFailure = run.hasFailed
        timer.cancel()
        run.limiter.signalActivity()
        await timer.value
        // Completion and failure alike commit what is held (emergency commit), then finish.
        try await run.finish(upstreamError: stoppedByCommitFailure ? nil : upstreamError)
    }
}

/// The shared state of one committer run: batching, commits in flight, first failure.
final class CommitterRun: Sendable {
    private struct State {
        var batching: CommitterBatchingStateMachine
        /// Batches formed but not yet given a commit slot, oldest first.
        var formed: [CommittableOffsetBatch] = []
        /// The newest commit task. Each commit task finishes only after its predecessor,
        /// so awaiting this one awaits them all.
        var lastCommit: Task<Void, Never>?
        var failure: (any Error)?
        var failureHandler: (@Sendable () -> Void)?
        /// Consumers this run commits to, asked to tell it when a revoke waits for commits.
        var consumers: [ObjectIdentifier: any OffsetCommitter] = [:]
        var lastConsumer: ObjectIdentifier?
    }

    private let state: Mutex<State>
    /// Serialises starting commits, so they reach the consumers in the order the batches were formed.
    private let starting = Mutex(())
    private let settings: CommitterSettings
    private let onCommitted: @Sendable (CommittableOffsetBatch) -> Void
    let limiter: CommitLimiter

    init(settings: CommitterSettings, onCommitted: @escaping @Sendable (CommittableOffsetBatch) -> Void) {
        self.settings = settings
        self.onCommitted = onCommitted
        self.state = Mutex(State(batching: CommitterBatchingStateMachine(settings: settings)))
        self.limiter = CommitLimiter(limit: settings.parallelism)
    }

    /// True once a commit failed.
    var hasFailed: Bool { state.withLock { $0.failure != nil } }

    /// Calls `handler` once when a commit fails (at once if one already has).
    func onFailure(_ handler: @escaping @Sendable () -> Void) {
        let failed = state.withLock { s -> Bool in
            if s.failure != nil { return true }
            s.failureHandler = handler
            return false
        }
        if failed { handler() }
    }

    func observe(_ offset: CommittableOffset) async throws {
        let consumer = offset.committer
        let (full, failure, newConsumer) = state.withLock { s -> (Bool, (any Error)?, Bool) in
            let id = ObjectIdentifier(consumer)
            var newConsumer = false
            if s.lastConsumer != id {
                s.lastConsumer = id
                if s.consumers.updateValue(consumer, forKey: id) == nil { newConsumer = true }
            }
            // Rebalance-safe commits: while a revoke waits, what is observed is committed at once.
            guard let full = s.batching.observe(offset, now: .now) ?? (consumer.requestsImmediateCommit ? s.batching.takeNow() : nil) else {
                return (false, s.failure, newConsumer)
            }
            s.formed.append(full)
            return (true, s.failure, newConsumer)
        }
        if newConsumer {
            consumer.addCommitRequestObserver(ObjectIdentifier(self)) { [weak self] in self?.commitNow() }
        }
        if let failure { throw failure }
        if full { await startCommit() } else { limiter.signalActivity() }
    }

    func flushOnTime() async {
        while !Task.isCancelled {
            if let deadline = state.withLock({ $0.batching.deadline }) {
                do { try await Task.sleep(until: deadline, clock: .continuous) } catch { return }
                let due = state.withLock { s -> Bool in
                    guard let batch = s.batching.due(now: .now) else { return false }
                    s.formed.append(batch)
                    return true
                }
                if due { await startCommit() }
            } else {
                await limiter.waitForActivity()
            }
        }
    }

    /// A consumer's revoke waits for commits: commit the current batch without waiting for its interval.
    private func commitNow() {
        let formed = state.withLock { s -> Bool in
            guard let batch = s.batching.takeNow() else { return false }
            s.formed.append(batch)
            return true
        }
        if formed { Task { await self.startCommit() } }
    }

    func finish(upstreamError: (any Error)?) async throws {
        defer {
            for consumer in state.withLock({ Array($0.consumers.values) }) { consumer.removeCommitRequestObserver(ObjectIdentifier(self)) }
        }
        state.withLock { s in
            if let last = s.batching.flushAll() { s.formed.append(last) }
        }
        while state.withLock({ !$0.formed.isEmpty }) { await startCommit() }
        if let last = state.withLock({ $0.lastCommit }) { await last.value }
        if let upstreamError { throw upstreamError }
        if let failure = state.withLock({ $0.failure }) { throw failure }
    }

    /// Commits the oldest formed batch once a slot is free.
    private func startCommit() async {
        // Waiting for a slot is the back-pressure on the upstream.
        await limiter.acquire()
        let started = starting.withLock { _ -> Bool in
            // Taking the oldest batch only now keeps commits in the order batches were formed,
            // even when the timer and the reader race for slots.
            let next = state.withLock { s -> (CommittableOffsetBatch, Task<Void, Never>?)? in
                s.formed.isEmpty ? nil : (s.formed.removeFirst(), s.lastCommit)
            }
            guard let (batch, previous) = next else { return false }
            // Started immediately (not on the next free thread), so this commit is handed to its
            // consumer before the next one is: a newer commit never overtakes an older one there,
            // which would let the older offsets overwrite the newer on the broker.
            let task = Task.immediate { await self.commit(batch, after: previous) }
            state.withLock { $0.lastCommit = task }
            return true
        }
        if !started { limiter.release() }
    }

    private func commit(_ batch: CommittableOffsetBatch, after previous: Task<Void, Never>?) async {
        var failed = false
        do {
            switch settings.delivery {
            case .waitForAck: try await batch.commit()
            case .sendAndForget: batch.commitAndForget()
            }
        } catch {
            failed = true
            fail(error)
        }
        // Batches are reported in the order they were formed (Alpakka's mapAsync), whatever
        // order the acknowledgements arrive in; nothing is reported after a failure.
        await previous?.value
        if !failed, !hasFailed { onCommitted(batch) }
        limiter.release()
    }

    private func fail(_ error: any Error) {
        let handler = state.withLock { s -> (@Sendable () -> Void)? in
            guard s.failure == nil else { return nil }
            s.failure = error
            defer { s.failureHandler = nil }
            return s.failureHandler
        }
        handler?()
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
