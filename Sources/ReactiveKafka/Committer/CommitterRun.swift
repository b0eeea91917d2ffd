import Logging
import Metrics
import Synchronization

/// The shared state of one committer run: batching, commits in flight, first failure.
/// The non-generic part of ``CommitterLoop``: its reader calls ``observe(_:)`` per offset
/// and ``startCommit()`` per formed batch, then ``complete(reading:)``.
@usableFromInline
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
        /// The partition object of the last offset observed; its consumer is in `consumers`.
        var lastPartition: ConsumedPartition?
        /// Sleeps until the current batch is due (a deadline, not a poll), or until a batch starts.
        var timer: Task<Void, Never>?
    }

    private let state: Mutex<State>
    /// Serialises starting commits, so they reach the consumers in the order the batches were formed.
    private let starting = Mutex(())
    private let settings: CommitterSettings
    private let onCommitted: @Sendable (CommittableOffsetBatch) -> Void
    let limiter: CommitLimiter
    private let instruments: CommitterInstruments?

    private init(settings: CommitterSettings, onCommitted: @escaping @Sendable (CommittableOffsetBatch) -> Void) {
        self.settings = settings
        self.instruments = CommitterInstruments(settings.metrics)
        self.onCommitted = onCommitted
        self.state = Mutex(State(batching: CommitterBatchingStateMachine(settings: settings)))
        self.limiter = CommitLimiter(limit: settings.parallelism)
    }

    /// Validates `settings` and starts a run with its timer.
    @usableFromInline
    static func start(settings: CommitterSettings, onCommitted: @escaping @Sendable (CommittableOffsetBatch) -> Void)
        throws(KafkaError) -> CommitterRun
    {
        try settings.validate()
        let run = CommitterRun(settings: settings, onCommitted: onCommitted)
        let timer = Task { await run.flushOnTime() }
        run.state.withLock { $0.timer = timer }
        return run
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

    /// Adds `offset` to the batch (one lock, no suspension): the reader's per-offset path.
    /// Returns true when a batch was formed, which the caller commits with ``startCommit()``;
    /// throws the first commit failure.
    @usableFromInline
    func observe(_ offset: CommittableOffset) throws -> Bool {
        let (full, startedBatch, failed, newConsumer) = state.withLock {
            s -> (Bool, Bool, Bool, (any OffsetCommitter)?) in
            var newConsumer: (any OffsetCommitter)?
            // Offsets come in runs of one partition object: its consumer is looked at once a run.
            if s.lastPartition !== offset.partition {
                s.lastPartition = offset.partition
                let consumer = offset.partition.committer
                if s.consumers.updateValue(consumer, forKey: ObjectIdentifier(consumer)) == nil {
                    newConsumer = consumer
                }
            }
            let wasIdle = !s.batching.isCollecting
            // Rebalance-safe commits: while a revoke waits, what is observed is committed at once.
            guard
                let full = s.batching.observe(offset, now: .now)
                    ?? (offset.partition.committer.requestsImmediateCommit ? s.batching.takeNow() : nil)
            else {
                return (false, wasIdle && s.batching.isCollecting, s.failure != nil, newConsumer)
            }
            s.formed.append(full)
            return (true, false, s.failure != nil, newConsumer)
        }
        if let newConsumer {
            newConsumer.addCommitRequestObserver(ObjectIdentifier(self)) { [weak self] in self?.commitNow() }
        }
        if failed, let failure = state.withLock({ $0.failure }) { throw failure }
        // The timer only needs to learn of a new deadline, not of every offset.
        if startedBatch { limiter.signalActivity() }
        return full
    }

    /// Awaits the end of the reader, stops the timer, and commits what is held (on completion
    /// and on upstream failure alike: the emergency commit), then rethrows the first error.
    @usableFromInline
    func complete(reading reader: Task<(any Error)?, Never>) async throws {
        onFailure { reader.cancel() }
        let upstreamError = await withTaskCancellationHandler {
            await reader.value
        } onCancel: {
            reader.cancel()
        }
        let stoppedByCommitFailure = hasFailed
        let timer = state.withLock { $0.timer }
        timer?.cancel()
        limiter.signalActivity()
        await timer?.value
        try await finish(upstreamError: stoppedByCommitFailure ? nil : upstreamError)
    }

    private func flushOnTime() async {
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

    private func finish(upstreamError: (any Error)?) async throws {
        defer {
            for consumer in state.withLock({ Array($0.consumers.values) }) {
                consumer.removeCommitRequestObserver(ObjectIdentifier(self))
            }
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
    @usableFromInline
    func startCommit() async {
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
        var committed = batch
        let started = ContinuousClock.now
        do {
            switch settings.delivery {
            case .waitForAck: try await batch.commit()
            case .sendAndForget: batch.commitAndForget()
            }
        } catch let error where error.kind == .notAssigned && settings.notAssignedOffsets == .skip {
            // Not this consumer's any more: their next owner reads them again (at-least-once holds).
            // Only what was committed is reported.
            committed = batch.removing(error.partitions)
            Self.skippedOffsets().increment(by: error.partitions.count)
            Self.logger.warning(
                "offsets of partitions no longer assigned were not committed; their next owner reads them again",
                metadata: ["partitions": "\(error.partitions.sorted())"])
        } catch {
            failed = true
            fail(error)
        }
        // Batches are reported in the order they were formed (Alpakka's mapAsync), whatever
        // order the acknowledgements arrive in; nothing is reported after a failure.
        await previous?.value
        if !failed {
            instruments?.committed(
                offsetCount: committed.batchSize, partitionCount: committed.partitionCount,
                after: settings.delivery == .waitForAck ? .now - started : nil)
        }
        if !failed, !hasFailed { onCommitted(committed) }
        limiter.release()
    }

    /// Partitions whose offsets were skipped because they were no longer assigned (``CommitterSettings/NotAssignedOffsets/skip``).
    /// Made at each use (rare), not held in a `static let`: a counter made before the metrics
    /// backend is bootstrapped stays a no-op for good, and the first skip may come before that.
    static func skippedOffsets() -> Counter { Counter(label: "reactive_kafka_committer_skipped_offsets") }
    static let logger = Logger(label: "reactive-kafka.committer")

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
