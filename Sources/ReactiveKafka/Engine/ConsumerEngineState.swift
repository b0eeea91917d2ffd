/// What a ``ConsumerEngine`` shares between its thread and the tasks that use it, guarded by
/// one lock (``ConsumerEngine/state``). Each concern keeps its rules in its own part:
/// - ``buffer``: records fetched ahead of the sources and the byte budget (``ConsumerBufferStateMachine``);
/// - ``lifecycle``: who holds the engine and how it ends (``ConsumerLifecycleStateMachine``);
/// - ``commits``: commit requests and who waits for them (``PendingCommits``);
/// - ``emitted``: what the sources emitted and what of it is committed (``EmittedOffsetTracker``);
/// - ``subsets``: the sources sharing one consumer (``SharedConsumerSubsets``);
/// - ``announcements``: newly assigned partitions for a partitioned source (``PartitionAnnouncements``);
/// - ``commands``: work queued for the engine thread (``EngineCommandQueue``).
struct ConsumerEngineState {
    typealias Reader = ConsumerEngine.Reader
    typealias Delivery = ConsumerEngine.Delivery

    var buffer: ConsumerBufferStateMachine<RecordChunk>
    /// Flow-control changes the engine thread has yet to apply to librdkafka.
    var pendingFlowControl: [ConsumerBufferStateMachine<RecordChunk>.FlowControl] = []
    /// Readers suspended until records arrive (one per reader).
    var waiters: [Reader: UnsafeContinuation<Delivery?, any Error>] = [:]
    var lifecycle: ConsumerLifecycleStateMachine
    var phase: ConsumerLifecycleStateMachine.Phase { lifecycle.phase }
    /// Callers of ``ConsumerEngine/shutdown()`` waiting for the close to finish.
    var closeWaiters: [UnsafeContinuation<Void, Never>] = []
    /// Set once the stream failed: readers and commits get this error.
    var failure: KafkaError?
    /// The partitions librdkafka has assigned and the sources may read.
    var assigned: Set<TopicPartition> = []
    /// The epoch at which a partition's records last became invalid (revoked or
    /// rewound): records handed out before it are never emitted.
    var invalidatedAt: [TopicPartition: UInt64] = [:]
    var commits = PendingCommits()
    var emitted: EmittedOffsetTracker
    var subsets = SharedConsumerSubsets()
    var announcements = PartitionAnnouncements()
    var commands = EngineCommandQueue()
    var statisticsJSON: String?
    /// The offset after the last record handed to a source, per partition: the application's
    /// position, from which lag is measured.
    var handedOutPositions: [TopicPartition: Int64] = [:]
    /// Batches handed to sources so far: progress, for the health's stall check.
    var batchesTaken: UInt64 = 0

    init(
        buffer: ConsumerBufferStateMachine<RecordChunk>, lifecycle: ConsumerLifecycleStateMachine,
        emitted: EmittedOffsetTracker
    ) {
        self.buffer = buffer
        self.lifecycle = lifecycle
        self.emitted = emitted
    }
}

/// Commit requests of one consumer: queued, sent and answered (``CommitStateMachine``), the
/// callers waiting for their outcome, and the committers to ask for an immediate commit while a
/// revoke waits for one.
struct PendingCommits {
    typealias RequestID = CommitStateMachine.RequestID
    typealias Waiter = UnsafeContinuation<Void, any Error>

    var machine = CommitStateMachine()
    private var waiters: [RequestID: Waiter] = [:]
    private var nextID: RequestID = 1
    /// Committers (by identity) and how to ask each for an immediate commit.
    var observers: [ObjectIdentifier: @Sendable () -> Void] = [:]

    /// Queues a commit; `waiter` (if any) is resumed with its outcome. Returns the request's id.
    @discardableResult
    mutating func enqueue(
        _ offsets: [TopicPartition: CommitPosition], deadline: ContinuousClock.Instant,
        started: ContinuousClock.Instant, waiter: Waiter?
    ) -> RequestID {
        let id = nextID
        nextID += 1
        machine.enqueue(.init(id: id, offsets: offsets, deadline: deadline, started: started))
        if let waiter { waiters[id] = waiter }
        return id
    }

    /// The caller waiting for request `id`, taken out to be resumed.
    mutating func takeWaiter(_ id: RequestID) -> Waiter? {
        waiters.removeValue(forKey: id)
    }

    /// Every request dropped (the consumer failed or closed): their callers, to be resumed with an error.
    mutating func drainAll() -> [Waiter] {
        machine.drainAll().compactMap { waiters.removeValue(forKey: $0) }
    }
}

/// The sources reading from one shared ``KafkaConsumer``: each attached its own partitions.
struct SharedConsumerSubsets {
    /// The partitions each source attached.
    private(set) var partitions: [UInt64: Set<TopicPartition>] = [:]
    /// Sources that completed (their stream ended or they detached).
    private(set) var stopped: Set<UInt64> = []
    /// Sources whose stream ended, keeping their partitions until the offsets they emitted
    /// can no longer be committed (or the deadline): then they detach.
    private(set) var detachWhenReleased: [UInt64: ContinuousClock.Instant] = [:]

    /// Every partition some source attached.
    var attached: Set<TopicPartition> { partitions.values.reduce(into: []) { $0.formUnion($1) } }

    mutating func attach(_ id: UInt64, _ given: Set<TopicPartition>) { partitions[id] = given }

    /// The source completes; its partitions stay attached (its commits still land) until it detaches.
    mutating func stop(_ id: UInt64) { stopped.insert(id) }

    /// The source lets its partitions go; returns them.
    mutating func detach(_ id: UInt64) -> Set<TopicPartition> {
        stopped.insert(id)
        detachWhenReleased[id] = nil
        return partitions.removeValue(forKey: id) ?? []
    }

    /// The source's stream ended: it completes now, and detaches once nothing downstream can
    /// still commit what it emitted, or at `deadline`.
    mutating func stopThenDetach(_ id: UInt64, deadline: ContinuousClock.Instant) {
        stopped.insert(id)
        if partitions[id] != nil { detachWhenReleased[id] = deadline }
    }

    /// Stopped sources waiting to detach that hold any of `wanted` (another source asks for them).
    func pendingDetaches(holding wanted: Set<TopicPartition>) -> [UInt64] {
        detachWhenReleased.keys.filter { partitions[$0]?.isDisjoint(with: wanted) == false }
    }

    func isStopped(_ id: UInt64) -> Bool { stopped.contains(id) }
}

/// Partitions assigned but not yet handed to a partitioned source as sub-streams, and the
/// outer iterator waiting for them.
struct PartitionAnnouncements {
    typealias Announcement = ConsumerEngine.Announcement
    typealias Waiter = UnsafeContinuation<[Announcement]?, any Error>

    private(set) var pending: [Announcement] = []
    var waiter: Waiter?

    /// Announces `new`; returns the waiting iterator with everything pending, if one waits.
    mutating func announce(_ new: [Announcement]) -> (Waiter, [Announcement])? {
        pending.append(contentsOf: new)
        guard let waiter else { return nil }
        self.waiter = nil
        return (waiter, takePending())
    }

    /// Everything pending, taken out.
    mutating func takePending() -> [Announcement] {
        defer { pending.removeAll() }
        return pending
    }

    /// The waiting iterator, taken out (to be resumed outside the lock).
    mutating func takeWaiter() -> Waiter? {
        defer { waiter = nil }
        return waiter
    }
}

/// Work for the engine thread (``ConsumerEngine/withConsumer(_:)``), run in order between batches.
struct EngineCommandQueue {
    private var queued: [(id: UInt64, command: ConsumerEngine.Command)] = []
    private var nextID: UInt64 = 1

    var isEmpty: Bool { queued.isEmpty }

    /// Queues `command`; returns its id (to withdraw it).
    mutating func queue(_ command: ConsumerEngine.Command) -> UInt64 {
        let id = nextID
        nextID += 1
        queued.append((id, command))
        return id
    }

    /// Takes back a command not yet run (its caller gave up); nil if it already ran.
    mutating func withdraw(_ id: UInt64) -> ConsumerEngine.Command? {
        guard let index = queued.firstIndex(where: { $0.id == id }) else { return nil }
        return queued.remove(at: index).command
    }

    /// Every queued command, in order, taken out to run (or to refuse at close).
    mutating func takeAll() -> [ConsumerEngine.Command] {
        defer { queued.removeAll() }
        return queued.map(\.command)
    }
}
