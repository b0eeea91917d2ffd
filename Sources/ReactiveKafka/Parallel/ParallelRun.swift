import DequeModule
import Logging
import Synchronization

/// One run of a parallel source: the shared state its tasks (partition readers, workers, the
/// committer, the downstream reader) meet in, behind one lock. The decisions are the pure
/// ``KeyScheduler`` (what may run) and ``PartitionProgress`` (what to commit); this class
/// only parks and resumes tasks around them.
///
/// A record is done once `process` returned: its slot and key free at once (the next record of
/// its key may start). Its result then waits for the downstream in a buffer of `maxConcurrency`;
/// a worker whose result finds the buffer full waits with it (a slow downstream slows the source).
final class ParallelRun<Key: Sendable, Value: Sendable, Output: Sendable>: Sendable {
    typealias Message = CommittableMessage<Key, Value>
    typealias Process = @Sendable (ConsumerRecord<Key, Value>) async throws -> Output

    struct Work: Sendable {
        let message: Message
        let lane: UInt64
    }
    typealias Ticket = KeyScheduler<Work>.Ticket

    /// One assignment of a partition.
    struct Lane {
        let partition: TopicPartition
        /// What a previous owner committed (offset, records completed above it), read on assignment.
        let previous: (committed: Int64, done: [Range<Int64>])?
        /// Made on the first record, from `previous` or that record's offset.
        var progress: PartitionProgress?
        /// The last position handed to the consumer to commit.
        var sent: CommitPosition?
        /// Its partition went (or the stream ends): nothing more is read, its queue was dropped.
        var ending = false
        var roomWaiter: UnsafeContinuation<Void, Never>?
        var drainWaiter: UnsafeContinuation<Void, Never>?
    }

    struct State {
        var scheduler: KeyScheduler<Work>
        var lanes: [UInt64: Lane] = [:]
        var nextLane: UInt64 = 1
        /// Read on assignment, taken by the partition's lane.
        var previous: [TopicPartition: (committed: Int64, done: [Range<Int64>])] = [:]
        var idleWorkers: [UnsafeContinuation<(Work, Ticket)?, Never>] = []
        /// Results not yet taken downstream.
        var outputs: Deque<Output> = []
        /// Workers waiting for room in `outputs`, with their results; their records keep their
        /// keys until then, so a key's results stay in offset order.
        var blockedResults:
            Deque<(output: Output, ticket: Ticket, offset: Int64, worker: UnsafeContinuation<Void, Never>)> = []
        var downstream: UnsafeContinuation<Output?, any Error>?
        var failure: (any Error)?
        /// No result comes any more once `outputs` is empty.
        var finished = false
        /// Workers stop taking records.
        var closing = false
        /// Something completed since the last commit.
        var dirty = false
        var commitWaiter: UnsafeContinuation<Void, Never>?
        var committer: (any OffsetCommitter)?
        /// The run's consumer (for the group metadata a transaction sends its offsets with).
        var engine: ConsumerEngine?
        var supervisor: Task<Void, Never>?
    }

    /// What to resume once the lock is released.
    struct Wakeups {
        var workers: [(UnsafeContinuation<(Work, Ticket)?, Never>, (Work, Ticket)?)] = []
        var others: [UnsafeContinuation<Void, Never>] = []
        var downstream: (UnsafeContinuation<Output?, any Error>, Result<Output?, any Error>)?

        func resume() {
            for (worker, work) in workers { worker.resume(returning: work) }
            for waiter in others { waiter.resume() }
            if let (waiter, result) = downstream { waiter.resume(with: result) }
        }
    }

    let settings: ParallelSettings
    let process: Process
    let failurePolicy: ParallelFailurePolicy<Key, Value>
    let logger: Logger
    /// Releases what `process` uses (an output producer the run owns), once no worker runs.
    let ending: @Sendable () async -> Void
    let state: Mutex<State>
    /// Exactly-once: completed offsets are committed in the output producer's transactions,
    /// never by the consumer.
    let transactions: (any ParallelTransactionCommitter)?

    init(
        settings: ParallelSettings, onFailure: ParallelFailurePolicy<Key, Value>, logger: Logger,
        process: @escaping Process, ending: @escaping @Sendable () async -> Void = {},
        transactions: (any ParallelTransactionCommitter)? = nil
    ) {
        self.settings = settings
        self.process = process
        self.ending = ending
        self.transactions = transactions
        self.failurePolicy = onFailure
        self.logger = logger
        self.state = Mutex(State(scheduler: KeyScheduler(maxConcurrency: settings.maxConcurrency)))
        transactions?.attach(fail: { [weak self] error in self?.fail(error) })
    }

    /// A partition reader waiting for room reads on once its backlog is down to this.
    var resumeReadingBelow: Int { settings.maxBufferedPerPartition - max(1, settings.maxBufferedPerPartition / 4) }

    /// The ordering key of `record` for the scheduler (nil: unordered).
    func orderingKey(_ record: ConsumerRecord<Key, Value>) -> Int? {
        switch settings.ordering {
        case .partition: 0
        case .key: record.orderingKeyHash
        case .unordered: nil
        }
    }

    // MARK: Records in
    //
    // The per-record entry points are also compiled for raw bytes with no result (`@_specialize`):
    // called from other modules they would otherwise run unspecialised, looking up generic
    // metadata per record.

    /// A partition's reader read `message`: it is queued (or skipped, done by a previous owner);
    /// returns once its partition has room for another.
    @_specialize(where Key == KafkaBytes, Value == KafkaBytes, Output == Void)
    func received(_ message: Message, lane: UInt64) async {
        let offset = message.record.offset
        let key = orderingKey(message.record)
        let (mustWait, wakeups): (Bool, Wakeups) = state.withLock { s in
            var w = Wakeups()
            // Mutated in place (never copied out): a copy would duplicate the progress bits per record.
            guard s.lanes[lane]?.ending == false else { return (false, w) }
            if s.committer == nil { s.committer = message.committableOffset.committer }
            if s.lanes[lane]!.progress == nil {
                let previous = s.lanes[lane]!.previous
                let start = previous.map { min($0.committed, offset) } ?? offset
                s.lanes[lane]!.progress = PartitionProgress(start: start, previouslyDone: previous?.done ?? [])
            }
            let fresh = s.lanes[lane]!.progress!.received(offset)
            guard fresh else {
                s.dirty = true
                return (false, w)
            }
            s.scheduler.enqueue(Work(message: message, lane: lane), lane: lane, key: key)
            dispatch(&s, &w)
            return (s.scheduler.backlog(lane) >= settings.maxBufferedPerPartition, w)
        }
        wakeups.resume()
        guard mustWait else { return }
        // A cancelled reader reads on (its sub-stream then ends), so that its partition is let go.
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    guard !Task.isCancelled, let l = s.lanes[lane], !l.ending, !s.closing,
                        s.scheduler.backlog(lane) >= settings.maxBufferedPerPartition
                    else { return true }
                    s.lanes[lane]!.roomWaiter = c
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { s -> UnsafeContinuation<Void, Never>? in
                defer { s.lanes[lane]?.roomWaiter = nil }
                return s.lanes[lane]?.roomWaiter
            }
            waiter?.resume()
        }
    }

    private func dispatch(_ s: inout State, _ w: inout Wakeups) {
        while !s.idleWorkers.isEmpty, let next = s.scheduler.take() {
            w.workers.append((s.idleWorkers.removeLast(), next))
        }
    }

    /// A worker's next record; nil once the run closes.
    @_specialize(where Key == KafkaBytes, Value == KafkaBytes, Output == Void)
    func nextWork() async -> (Work, Ticket)? {
        await withUnsafeContinuation { (c: UnsafeContinuation<(Work, Ticket)?, Never>) in
            let now: (Work, Ticket)?? = state.withLock { s in
                if s.closing { return .some(nil) }
                if let next = s.scheduler.take() { return .some(next) }
                s.idleWorkers.append(c)
                return .none
            }
            if let now { c.resume(returning: now) }
        }
    }

    // MARK: Records out

    /// `ticket`'s record finished with `output` (nil: nothing to emit, e.g. dead-lettered): it is
    /// done. Returns the worker's next record (it goes first: no other worker is woken for it),
    /// after its result found room downstream; nil once the run closes.
    @_specialize(where Key == KafkaBytes, Value == KafkaBytes, Output == Void)
    func completedThenNext(_ ticket: Ticket, offset: Int64, output: Output?) async -> (Work, Ticket)? {
        let (mine, full, wakeups) = state.withLock { s -> ((Work, Ticket)?, Bool, Wakeups) in
            var w = Wakeups()
            if let output, !deliver(output, &s, &w) { return (nil, true, w) }
            settle(ticket, offset: offset, done: true, &s, &w, dispatching: false)
            let mine = s.closing ? nil : s.scheduler.take()
            dispatch(&s, &w)
            return (mine, false, w)
        }
        wakeups.resume()
        if let mine { return mine }
        if full, let output {
            await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
                let wakeups = state.withLock { s -> Wakeups? in
                    var w = Wakeups()
                    if s.failure != nil || s.finished || deliver(output, &s, &w) {
                        settle(ticket, offset: offset, done: true, &s, &w)
                        return w
                    }
                    s.blockedResults.append((output, ticket, offset, c))
                    return nil
                }
                if let wakeups {
                    wakeups.resume()
                    c.resume()
                }
            }
        }
        return await nextWork()
    }

    /// Hands `output` to the waiting downstream or buffers it; false when the buffer is full.
    private func deliver(_ output: Output, _ s: inout State, _ w: inout Wakeups) -> Bool {
        if let waiter = s.downstream {
            s.downstream = nil
            w.downstream = (waiter, .success(output))
            return true
        }
        guard s.outputs.count < settings.maxConcurrency else { return false }
        s.outputs.append(output)
        return true
    }

    /// `ticket`'s record stopped without completing (cancelled, or failed the stream): it is read again later.
    func abandoned(_ ticket: Ticket) {
        let wakeups = state.withLock { s in
            var w = Wakeups()
            settle(ticket, offset: nil, done: false, &s, &w)
            return w
        }
        wakeups.resume()
    }

    /// Frees `ticket`'s slot and key, records its offset done (when `done`), and wakes whoever that lets go on.
    func settle(
        _ ticket: Ticket, offset: Int64?, done: Bool, _ s: inout State, _ w: inout Wakeups, dispatching: Bool = true
    ) {
        s.scheduler.finished(ticket)
        if s.lanes[ticket.lane] != nil {
            // In place, as in `received`.
            if done, let offset, s.lanes[ticket.lane]!.progress?.complete(offset) != nil {
                s.dirty = true
                if let waiter = s.commitWaiter {
                    s.commitWaiter = nil
                    w.others.append(waiter)
                }
            }
            // Woken a quarter of the buffer below full, so it reads a run of records per wake-up.
            if s.scheduler.backlog(ticket.lane) <= resumeReadingBelow, let waiter = s.lanes[ticket.lane]!.roomWaiter {
                s.lanes[ticket.lane]!.roomWaiter = nil
                w.others.append(waiter)
            }
            if s.scheduler.running(ticket.lane) == 0, let waiter = s.lanes[ticket.lane]!.drainWaiter {
                s.lanes[ticket.lane]!.drainWaiter = nil
                w.others.append(waiter)
            }
        }
        if dispatching { dispatch(&s, &w) }
    }

    /// The downstream's next result: waits for one; nil once the run ended; throws its failure.
    @_specialize(where Key == KafkaBytes, Value == KafkaBytes, Output == Void)
    func nextOutput() async throws -> Output? {
        try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (c: UnsafeContinuation<Output?, any Error>) in
                let (now, wakeups): (Result<Output?, any Error>?, Wakeups) = state.withLock { s in
                    var w = Wakeups()
                    // A failure is told once what completed was committed (at the end of the run).
                    if let failure = s.failure, s.finished { return (.failure(failure), w) }
                    if let first = s.outputs.popFirst() {
                        if let blocked = s.blockedResults.popFirst() {
                            s.outputs.append(blocked.output)
                            settle(blocked.ticket, offset: blocked.offset, done: true, &s, &w)
                            w.others.append(blocked.worker)
                        }
                        return (.success(first), w)
                    }
                    if s.finished { return (.success(nil), w) }
                    if Task.isCancelled { return (.failure(CancellationError()), w) }
                    s.downstream = c
                    return (nil, w)
                }
                wakeups.resume()
                if let now { c.resume(with: now) }
            }
        } onCancel: {
            let waiter = state.withLock { s in
                defer { s.downstream = nil }
                return s.downstream
            }
            waiter?.resume(throwing: CancellationError())
            cancel()
        }
    }

    // MARK: Ending

    /// Stops the run: the downstream went away. What completed is committed on the way out.
    func cancel() {
        let (supervisor, wakeups) = state.withLock { s in
            var w = Wakeups()
            dropOutputs(&s, &w)
            return (s.supervisor, w)
        }
        wakeups.resume()
        supervisor?.cancel()
    }

    /// Fails the stream with `error` (the first failure wins) and stops the run; the downstream
    /// is told once what completed was committed.
    func fail(_ error: any Error) {
        let (supervisor, wakeups, first) = state.withLock { s -> (Task<Void, Never>?, Wakeups, Bool) in
            var w = Wakeups()
            guard s.failure == nil else { return (nil, w, false) }
            s.failure = error
            dropOutputs(&s, &w)
            return (s.supervisor, w, true)
        }
        if first { logger.error("parallel source failed", metadata: ["error": "\(error)"]) }
        wakeups.resume()
        supervisor?.cancel()
    }

    /// Results nobody will take (their records are done): dropped, and their workers let go.
    private func dropOutputs(_ s: inout State, _ w: inout Wakeups) {
        s.outputs.removeAll()
        while let blocked = s.blockedResults.popFirst() {
            settle(blocked.ticket, offset: blocked.offset, done: true, &s, &w)
            w.others.append(blocked.worker)
        }
    }

    /// Workers stop: those idle are told so.
    func close() {
        let idle = state.withLock { s in
            s.closing = true
            defer { s.idleWorkers.removeAll() }
            return s.idleWorkers
        }
        for worker in idle { worker.resume(returning: nil) }
    }

    /// No result comes any more: the downstream completes once it took what is left.
    func finish() {
        let waiter = state.withLock { s -> (UnsafeContinuation<Output?, any Error>, Result<Output?, any Error>)? in
            s.finished = true
            s.closing = true
            guard let waiter = s.downstream, s.outputs.isEmpty else { return nil }
            s.downstream = nil
            return (waiter, s.failure.map { .failure($0) } ?? .success(nil))
        }
        if let (waiter, result) = waiter { waiter.resume(with: result) }
    }
}
