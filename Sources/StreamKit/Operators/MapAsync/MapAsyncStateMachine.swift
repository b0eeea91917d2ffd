import DequeModule

/// The pure state of `mapAsync`/`mapAsyncUnordered`: a pool of at most
/// `parallelism` workers that take turns pulling the upstream, run the
/// transform concurrently, and hand results to one consumer.
///
/// Invariant: `pulled - emitted <= parallelism`, so at most `parallelism`
/// elements are pulled, running or waiting to be emitted at any time. The
/// storage resumes the continuations returned here outside its lock.
@usableFromInline struct MapAsyncStateMachine<Input, Output> {
    @usableFromInline typealias WorkerContinuation = UnsafeContinuation<Bool, Never>
    @usableFromInline typealias ConsumerContinuation = UnsafeContinuation<Void, Never>

    @usableFromInline enum Upstream {
        case idle
        case pulling
        case finished
        case failed(any Error)
    }

    @usableFromInline let parallelism: Int
    @usableFromInline let ordered: Bool
    @usableFromInline var pending: Deque<(index: Int, input: Input)> = []
    /// Ordered mode: results for indexes `emitted ..< pulled`, `nil` while running.
    @usableFromInline var slots: Deque<Result<Output, any Error>?> = []
    /// Unordered mode: results in completion order.
    @usableFromInline var completed: Deque<Result<Output, any Error>> = []
    @usableFromInline var pulled = 0
    @usableFromInline var emitted = 0
    @usableFromInline var running = 0
    @usableFromInline var upstream: Upstream = .idle
    @usableFromInline var idleWorkers: [WorkerContinuation] = []
    @usableFromInline var wakesOutstanding = 0
    @usableFromInline var spawned = 0
    @usableFromInline var consumer: ConsumerContinuation?
    @usableFromInline var terminated = false
    /// The most transforms that ran at the same time.
    @usableFromInline var maxRunning = 0
    /// Whether the transforms the consumer ran itself finished quickly; then
    /// waking a worker for the next element costs more than it can save.
    @usableFromInline var inlineIsCheap = false

    @inlinable init(parallelism: Int, ordered: Bool) {
        self.parallelism = parallelism
        self.ordered = ordered
    }

    @usableFromInline var inWindow: Int { pulled - emitted }
    @usableFromInline var room: Int { parallelism - inWindow }

    /// Who must be woken, resumed or created after a transition.
    @usableFromInline struct Wake {
        @usableFromInline var worker: WorkerContinuation? = nil
        @usableFromInline var spawnWorker = false
        @usableFromInline var consumer: ConsumerContinuation? = nil
        @inlinable static var none: Wake { Wake() }
        @inlinable init(
            worker: WorkerContinuation? = nil, spawnWorker: Bool = false, consumer: ConsumerContinuation? = nil
        ) {
            self.worker = worker
            self.spawnWorker = spawnWorker
            self.consumer = consumer
        }
    }

    /// Before the consumer runs a transform itself. With cheap transforms it
    /// does not wake anyone, except when every worker is parked: one worker
    /// stays awake, so a transform that waits for other elements of the stage
    /// (a client that flushes only once N requests are pending) cannot stall it.
    @inlinable mutating func wakeForInlineRun() -> Wake {
        if inlineIsCheap && spawned - idleWorkers.count > 0 { return .none }
        return wakeWorkerIfUseful()
    }

    /// Wakes (or spawns) one more worker if there is work nobody is about to do.
    @inlinable mutating func wakeWorkerIfUseful() -> Wake {
        guard !terminated, wakesOutstanding == 0 else { return .none }
        let upstreamOpen: Bool
        if case .idle = upstream { upstreamOpen = true } else { upstreamOpen = false }
        guard !pending.isEmpty || (upstreamOpen && room > 0) else { return .none }
        if let worker = idleWorkers.popLast() {
            wakesOutstanding += 1
            return Wake(worker: worker)
        }
        if spawned < parallelism {
            spawned += 1
            wakesOutstanding += 1
            return Wake(spawnWorker: true)
        }
        return .none
    }

    // MARK: consumer

    @usableFromInline enum ConsumerAction {
        case emit(Result<Output, any Error>, Wake)
        case finished((any Error)?)
        case suspend
    }

    /// The consumer asks for the next result without suspending.
    @inlinable mutating func consumerNext() -> ConsumerAction {
        if terminated { return .finished(nil) }
        var result: Result<Output, any Error>? = nil
        if ordered {
            if let first = slots.first, let ready = first {
                slots.removeFirst()
                result = ready
            }
        } else {
            result = completed.popFirst()
        }
        if let result {
            emitted += 1
            if case .failure = result {
                terminated = true
                return .emit(result, .none)
            }
            return .emit(result, inlineIsCheap ? .none : wakeWorkerIfUseful())
        }
        if inWindow == 0 {
            switch upstream {
            case .finished:
                terminated = true
                return .finished(nil)
            case .failed(let error):
                terminated = true
                return .finished(error)
            case .idle, .pulling:
                break
            }
        }
        return .suspend
    }

    /// Parks the consumer unless a result arrived since ``consumerNext()``; returns whether it parked.
    @inlinable mutating func consumerSuspend(_ continuation: ConsumerContinuation) -> Bool {
        if consumerHasWork { return false }
        consumer = continuation
        return true
    }

    @usableFromInline var consumerHasWork: Bool {
        if terminated { return true }
        if ordered {
            if case .some(.some) = slots.first { return true }
        } else if !completed.isEmpty {
            return true
        }
        if inWindow == 0 {
            switch upstream {
            case .finished, .failed: return true
            case .idle, .pulling: return false
            }
        }
        return false
    }

    @usableFromInline enum ConsumerHelp {
        /// Run the transform of the head element in the consumer's task.
        case run(index: Int, input: Input, Wake)
        /// Pull one element in the consumer's task (nothing is running, so no result can be held up).
        case pull
        case none
    }

    /// Before parking, the consumer does work itself when that cannot delay a
    /// result: for trivial transforms this keeps the stage on one thread.
    @inlinable mutating func consumerHelp() -> ConsumerHelp {
        if terminated { return .none }
        if ordered, let first = pending.first, first.index == emitted {
            pending.removeFirst()
            running += 1
            maxRunning = max(maxRunning, running)
            return .run(index: first.index, input: first.input, wakeForInlineRun())
        }
        // Only in order: there the consumer cannot emit anything before the head anyway. Unordered,
        // running a transform here would hold back results other workers complete meanwhile.
        if ordered, case .idle = upstream, room > 0, running == 0, pending.isEmpty {
            upstream = .pulling
            return .pull
        }
        return .none
    }

    /// The consumer pulled `input` itself and runs it now; returns its index.
    @inlinable mutating func consumerPulled(_ input: Input) -> (index: Int, wake: Wake) {
        let index = pulled
        pulled += 1
        if ordered { slots.append(nil) }
        running += 1
        maxRunning = max(maxRunning, running)
        upstream = .idle
        return (index, wakeForInlineRun())
    }

    /// The consumer starts: spawns the first worker.
    @inlinable mutating func start() -> Wake {
        wakeWorkerIfUseful()
    }

    // MARK: workers

    @usableFromInline enum WorkerAction {
        case process(index: Int, input: Input, Wake)
        case pull
        case suspend
        case exit
    }

    /// A woken or new worker starts running.
    @inlinable mutating func workerWoke() {
        wakesOutstanding -= 1
    }

    /// A worker asks what to do next.
    @inlinable mutating func workerNext() -> WorkerAction {
        if terminated { return .exit }
        if let item = pending.popFirst() {
            running += 1
            maxRunning = max(maxRunning, running)
            return .process(index: item.index, input: item.input, wakeWorkerIfUseful())
        }
        switch upstream {
        case .idle where room > 0:
            upstream = .pulling
            return .pull
        case .finished, .failed:
            return .exit
        default:
            return .suspend
        }
    }

    /// Parks the worker unless there is something to do; returns whether it parked.
    @inlinable mutating func workerSuspend(_ continuation: WorkerContinuation) -> Bool {
        if terminated { return false }
        if !pending.isEmpty { return false }
        switch upstream {
        case .idle where room > 0: return false
        case .finished, .failed: return false
        default:
            idleWorkers.append(continuation)
            return true
        }
    }

    @usableFromInline enum PullAction {
        case pullAgain(Wake)
        case stopPulling(Wake)
    }

    /// The pulling worker got `input` from upstream.
    @inlinable mutating func pulled(_ input: Input) -> PullAction {
        if terminated { return .stopPulling(.none) }
        pending.append((pulled, input))
        if ordered { slots.append(nil) }
        pulled += 1
        let wake = wakeWorkerIfUseful()
        if room > 0 { return .pullAgain(wake) }
        upstream = .idle
        return .stopPulling(wake)
    }

    /// The upstream ended. Returns the parked workers (to let them exit) and the consumer to wake.
    @inlinable mutating func upstreamEnded(_ error: (any Error)?) -> (
        workers: [WorkerContinuation], consumer: ConsumerContinuation?
    ) {
        upstream = error.map { .failed($0) } ?? .finished
        let workers = idleWorkers
        idleWorkers = []
        let consumer = inWindow == 0 ? takeConsumer() : nil
        return (workers, consumer)
    }

    /// A worker finished the transform of element `index`.
    @inlinable mutating func completed(index: Int, _ result: Result<Output, any Error>) -> Wake {
        running -= 1
        if terminated { return .none }
        var wake = Wake.none
        if ordered {
            slots[index - emitted] = result
            if index == emitted { wake.consumer = takeConsumer() }
        } else {
            completed.append(result)
            wake.consumer = takeConsumer()
        }
        return wake
    }

    @inlinable mutating func takeConsumer() -> ConsumerContinuation? {
        defer { consumer = nil }
        return consumer
    }

    /// Ends everything (consumer done, failed or cancelled). Returns what to resume.
    @inlinable mutating func terminate() -> (workers: [WorkerContinuation], consumer: ConsumerContinuation?) {
        terminated = true
        pending.removeAll()
        slots.removeAll()
        completed.removeAll()
        let workers = idleWorkers
        idleWorkers = []
        return (workers, takeConsumer())
    }
}
