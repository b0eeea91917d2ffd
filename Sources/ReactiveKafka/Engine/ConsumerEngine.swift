import CRdKafka
import Foundation
import Logging
import Synchronization

/// The one owner of a librdkafka consumer: Alpakka's `KafkaConsumerActor`.
///
/// A dedicated thread (never the cooperative pool) runs the consumer: it
/// sleeps in `poll(2)` on a ``WakeupSignal`` (an eventfd on Linux, a pipe elsewhere) that librdkafka signals when records,
/// callbacks or commit results arrive, drains them in batches with
/// `rd_kafka_consume_batch_queue`, and serves commands from Swift tasks.
/// Sources take records in whole batches (one continuation per batch), and
/// the buffer's byte budget pauses and resumes partitions (back-pressure that
/// keeps the consumer in its group). Every librdkafka call on the handle is
/// made from this thread, except the thread-safe signalling calls.
@usableFromInline
final class ConsumerEngine: OffsetCommitter, @unchecked Sendable {
    struct Configuration: Sendable {
        var properties: [String: String]
        var subscription: Subscription
        var groupId: String?
        var maxBufferedBytes: Int
        var maxBatchSize: Int
        var commitTimeout: Duration
        var commitTimeWarning: Duration
        var closeTimeout: Duration
        var brokerUnreachableTimeout: Duration?
        /// On revoke, wait (at most this long) until the records emitted for the
        /// revoked partitions are committed; `nil` does not wait.
        var rebalanceSafeCommitTimeout: Duration?
        var partitionHandlerWarning: Duration
        /// The end of the sources ends the consumer (false for a shared ``KafkaConsumer``, which its owner ends).
        var endsWithItsSources: Bool = true
        /// A plain source with librdkafka's auto-commit: offsets are stored for emitted records
        /// only (`enable.auto.offset.store=false`), so auto-commit never runs ahead of the stream.
        var storesEmittedOffsets: Bool = false
        /// Sources read per partition (sub-streams): a slow partition is paused on its own.
        var partitioned: Bool = false
        var offsetResetProtection: OffsetResetProtection?
        var events: RebalanceEventHub?
        var logger: Logger
    }

    /// A partition assigned at `epoch`, for a partitioned source to open a sub-stream.
    struct Announcement: Sendable, Equatable {
        let partition: TopicPartition
        let epoch: UInt64
    }

    /// Who takes records: the whole-consumer source, or one partition's sub-stream.
    enum Reader: Hashable, Sendable {
        case all
        case partition(TopicPartition)
        /// A source sharing the consumer with others: the partitions it attached (``KafkaConsumer``).
        case subset(UInt64)
    }

    /// What a source receives: chunks of records and the revocation epoch they are valid for.
    struct Delivery: @unchecked Sendable {
        let chunks: [RecordChunk]
        let epoch: UInt64
    }

    typealias Phase = ConsumerLifecycleStateMachine.Phase

    /// Work for the engine thread (``withConsumer(_:)``): run between batches, or
    /// refused with an error when the consumer closes first or the caller gives up.
    struct Command: Sendable {
        let run: @Sendable (RestrictedConsumer) -> Void
        let refuse: @Sendable (KafkaError) -> Void
    }

    struct State {
        var buffer: ConsumerBufferStateMachine<RecordChunk>
        var waiters: [Reader: UnsafeContinuation<Delivery?, any Error>] = [:]
        /// Who holds the engine and how it ends (see ``ConsumerLifecycleStateMachine``).
        var lifecycle: ConsumerLifecycleStateMachine
        var phase: Phase { lifecycle.phase }
        var failure: KafkaError?
        var assigned: Set<TopicPartition> = []
        var commits = CommitStateMachine()
        var commitWaiters: [CommitStateMachine.RequestID: UnsafeContinuation<Void, any Error>] = [:]
        var nextCommitID: CommitStateMachine.RequestID = 1
        var pendingFlowControl: [ConsumerBufferStateMachine<RecordChunk>.FlowControl] = []
        var closeWaiters: [UnsafeContinuation<Void, Never>] = []
        var statisticsJSON: String?
        var forgetfulCommitFailures = 0
        /// Work for the engine thread (``withConsumer(_:)``), run in order.
        var commands: [(id: UInt64, command: Command)] = []
        var nextCommandID: UInt64 = 1

        /// Queues `command` for the engine thread; returns its id (to withdraw it).
        mutating func queue(_ command: Command) -> UInt64 {
            let id = nextCommandID
            nextCommandID += 1
            commands.append((id, command))
            return id
        }
        /// The epoch at which a partition's records last became invalid (revoked or
        /// rewound): records handed out before it are never emitted.
        var invalidatedAt: [TopicPartition: UInt64] = [:]
        /// Newly assigned partitions not yet announced to a partitioned source.
        var announced: [Announcement] = []
        var announcementWaiter: UnsafeContinuation<[Announcement]?, any Error>?
        // Rebalance-safe commits (only tracked when enabled):
        /// The offset after the last record handed to a source, per partition.
        var handedOut: [TopicPartition: Int64] = [:]
        /// The partitions of the batch each reader is still emitting.
        var holding: [Reader: Set<TopicPartition>] = [:]
        /// The first record a reader dropped, unemitted, after a revoke.
        var firstUnemitted: [TopicPartition: Int64] = [:]
        /// The next offset to read as last committed by this consumer.
        var committedNext: [TopicPartition: Int64] = [:]
        /// Partitions being revoked while their commits are awaited: still committable.
        var revoking: Set<TopicPartition> = []
        /// The partitions of each source sharing this consumer, and the sources that detached.
        var subsets: [UInt64: Set<TopicPartition>] = [:]
        var detached: Set<UInt64> = []
        /// Emitted-offset storing (``Configuration/storesEmittedOffsets``): the offset after each
        /// partition's last record in the batch a reader holds, and what is emitted and not yet stored.
        var lastTaken: [Reader: [TopicPartition: Int64]] = [:]
        var emittedToStore: [TopicPartition: Int64] = [:]
        /// Committers to ask for an immediate commit while a revoke waits.
        var commitRequestObservers: [ObjectIdentifier: @Sendable () -> Void] = [:]
    }

    let configuration: Configuration
    /// The values of secret properties, scrubbed from librdkafka's texts before they are logged or thrown.
    let secretValues: SecretValues
    let handle: OpaquePointer
    /// Destroys `handle` once the engine and every fetched batch have let go (see ``ClientHandleOwner``).
    private var clientOwner: ClientHandleOwner?
    let consumerQueue: OpaquePointer
    let commitQueue: OpaquePointer
    /// Assigned partitions' fetch queues are forwarded here, away from the
    /// consumer queue, so records can be left in librdkafka while the buffer is
    /// over budget without starving callbacks and events.
    let messageQueue: OpaquePointer
    let wakeup: WakeupSignal
    private let callbackTarget: CallbackTarget
    let state: Mutex<State>
    /// Incremented on every revocation; a source re-checks its records against
    /// the assignment when it changes, so no record is emitted after its
    /// partition was revoked.
    @usableFromInline let revocationEpoch = Atomic<UInt64>(0)
    /// Whether closing completed librdkafka's consumer close (which leaves the group).
    let leftGroupCleanly = Atomic<Bool>(false)
    /// True while a revoke waits for commits: committers should commit what they get at once.
    let awaitingRevokeCommits = Atomic<Bool>(false)
    var logger: Logger { configuration.logger }
    var tracksEmittedOffsets: Bool { configuration.rebalanceSafeCommitTimeout != nil }
    var tracksCommittedOffsets: Bool { tracksEmittedOffsets || configuration.offsetResetProtection != nil }
    /// Offset reset protection (engine thread): the newest record timestamp read per partition,
    /// and the offset a partition must not jump back from (committed, or where the application sought).
    var newestTimestamp: [TopicPartition: Int64] = [:]
    var resetBase: [TopicPartition: Int64] = [:]

    // Engine-thread-only state.
    private var topicNames: [OpaquePointer: String] = [:]
    private var consumedPartitions: [TopicPartition: ConsumedPartition] = [:]
    private var unreachableSince: ContinuousClock.Instant?
    private var lastReachabilityProbe: ContinuousClock.Instant?
    private var sendStarted: [UInt64: ContinuousClock.Instant] = [:]
    /// Offsets of commits in flight, to learn what is committed (rebalance-safe commits).
    private var sentOffsets: [UInt64: [TopicPartition: Int64]] = [:]
    /// Set when the coordinator refused a commit because the group is rebalancing (engine thread).
    var commitsRefusedByRebalance = false
    /// The offset after the last record read per partition, and the average size of recent
    /// records (engine thread): where a resumed partition continues, how many records fit.
    var nextOffsets: [TopicPartition: Int64] = [:]
    var recentRecordBytes = 1024
    /// Where fetcher wake-ups are sent from (they block until the brokers answer, at most
    /// 1 s each): the engine's own second thread, never Dispatch's or Swift's pools.
    private let fetcherWakeUps = BlockingCallThread(name: "rkafka-wake")
    /// Resumed partitions whose first records are yet to be checked for a step back.
    var resumedUnchecked: Set<TopicPartition> = []
    /// Partitions this engine last paused in librdkafka (engine thread).
    var appliedPaused: Set<TopicPartition> = []
    /// Cooperative rebalancing (engine thread): where the member is in a rebalance that revoked
    /// partitions. librdkafka 2.0.2 then calls the assign callback (the generation's additions) and
    /// at once rejoins, so that the revoked partitions can be handed out, while this member keeps
    /// its other partitions and goes on committing them. The coordinator serves a connection's
    /// requests in order, so a commit sent while that JoinGroup is pending is answered only after
    /// the join completed, with the old generation: ILLEGAL_GENERATION, which librdkafka 2.0.2
    /// answers by declaring the whole assignment lost (the kept partitions are revoked without
    /// commits and assigned again from stale committed offsets: records emitted twice by the same
    /// member, and re-read by the next owner of those that move). So commits are held from that
    /// assign callback until the next rebalance callback, when the generation is current again.
    var cooperativeRejoin: CooperativeRejoin = .none
    /// How long a rejoin may hold commits: half the commit timeout, so that a rejoin held up (by a
    /// crashed member's session, say) lets commits out before they time out, taking the risk above
    /// rather than failing the stream.
    var commitHoldLimit: Duration { configuration.commitTimeout / 2 }

    /// See ``cooperativeRejoin``.
    enum CooperativeRejoin: Equatable {
        /// No rejoin pending: commits go out.
        case none
        /// Partitions were revoked: the assign callback that follows starts a rejoin.
        case afterRevoke
        /// Rejoining since `since`: commits wait.
        case holding(since: ContinuousClock.Instant)
    }

    /// Creates the consumer, subscribes, and starts its thread.
    init(configuration: Configuration, statisticsInterval: Duration?) throws(KafkaError) {
        self.configuration = configuration
        self.secretValues = SecretValues(of: configuration.properties)
        var properties = configuration.properties
        // With manual commits the engine decides what is committed: offsets of records
        // merely buffered must never be stored. (A plain source with auto-commit keeps
        // librdkafka's at-most-once store-on-read.)
        if properties["enable.auto.commit"] == "false" || configuration.storesEmittedOffsets {
            properties["enable.auto.offset.store"] = "false"
        }
        if properties["queued.max.messages.kbytes"] == nil {
            properties["queued.max.messages.kbytes"] = String(max(1, configuration.maxBufferedBytes / 2 / 1024))
        }
        // librdkafka 2.0 stops fetching at queued.min.messages (counted over the whole
        // queue) and resumes only ~1 s later when the app falls behind; let the byte
        // limit above be the only cap.
        if properties["queued.min.messages"] == nil {
            properties["queued.min.messages"] = "10000000"
        }
        if let statisticsInterval {
            properties["statistics.interval.ms"] = String(statisticsInterval.milliseconds)
        }
        let conf = try KafkaClientConfiguration.make(properties, client: "consumer")
        do {
            self.wakeup = try WakeupSignal()
        } catch {
            rd_kafka_conf_destroy(conf)
            fetcherWakeUps.stop()
            throw error
        }
        var buffer = ConsumerBufferStateMachine<RecordChunk>(maxBufferedBytes: configuration.maxBufferedBytes)
        if configuration.partitioned { buffer.perPartitionBudget = buffer.pauseThreshold }
        self.state = Mutex(State(buffer: buffer, lifecycle: ConsumerLifecycleStateMachine(endsWithItsSources: configuration.endsWithItsSources)))

        // librdkafka hands this box to the C callbacks; it points back to the engine once built.
        let callbackTarget = CallbackTarget()
        self.callbackTarget = callbackTarget
        // Unretained: the handle's owner keeps the target alive until the handle is destroyed
        // (`ClientHandleOwner.callbackOpaque`, set as soon as the handle exists).
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(callbackTarget).toOpaque())
        rd_kafka_conf_set_rebalance_cb(conf, engineRebalanceCallback)
        rd_kafka_conf_set_error_cb(conf, engineErrorCallback)
        if statisticsInterval != nil { rd_kafka_conf_set_stats_cb(conf, engineStatisticsCallback) }
        let handle: OpaquePointer
        do {
            // librdkafka may quote a secret in its reason: newClient scrubs it.
            handle = try KafkaClientConfiguration.newClient(RD_KAFKA_CONSUMER, conf, properties: properties, client: "consumer")
        } catch {
            fetcherWakeUps.stop()
            throw error
        }
        self.handle = handle
        let clientOwner = ClientHandleOwner(handle)
        // librdkafka may call the callbacks until the handle is destroyed, which can be after
        // this engine is gone (batches share the owner): the owner keeps their opaque alive.
        clientOwner.callbackOpaque = callbackTarget
        self.clientOwner = clientOwner
        rd_kafka_poll_set_consumer(handle)
        // Without a group (a manual assignment) there is no consumer-group queue: callbacks use the main queue.
        self.consumerQueue = rd_kafka_queue_get_consumer(handle) ?? rd_kafka_queue_get_main(handle)
        self.commitQueue = rd_kafka_queue_new(handle)
        self.messageQueue = rd_kafka_queue_new(handle)
        // Unretained: cleared (on this engine's thread, or below on failure) before the engine can go.
        callbackTarget.engine = Unmanaged.passUnretained(self)
        Self.enableWakeup(consumerQueue, wakeup)
        Self.enableWakeup(commitQueue, wakeup)
        Self.enableWakeup(messageQueue, wakeup)

        if configuration.subscription.isGroupSubscription {
            let topics = PartitionList.make(configuration.subscription.topicNames.map { TopicPartition($0, RD_KAFKA_PARTITION_UA) })
            let err = rd_kafka_subscribe(handle, topics)
            rd_kafka_topic_partition_list_destroy(topics)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                // The handle outlives this engine (its owner destroys it on another thread): it
                // must not write to the eventfd closed with the engine (the consumer queue is the
                // handle's own, its io event stays set after our reference is dropped), nor call
                // back into the engine freed by this throw.
                rd_kafka_queue_io_event_enable(consumerQueue, -1, nil, 0)
                rd_kafka_queue_io_event_enable(commitQueue, -1, nil, 0)
                rd_kafka_queue_io_event_enable(messageQueue, -1, nil, 0)
                callbackTarget.engine = nil
                rd_kafka_queue_destroy(messageQueue)
                rd_kafka_queue_destroy(commitQueue)
                rd_kafka_queue_destroy(consumerQueue)
                // Never joined a group: nothing to leave, so destroying it must not wait for a close.
                clientOwner.destroyFlags = Int32(RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE)
                self.clientOwner = nil
                fetcherWakeUps.stop()
                throw KafkaError.fromCode(err, "subscribing to \(configuration.subscription)")
            }
        }
        let thread = Thread { [self] in self.run() }
        thread.name = "rkafka-consumer"
        thread.start()
    }

    private static func enableWakeup(_ queue: OpaquePointer, _ wakeup: WakeupSignal) {
        WakeupSignal.payload.withUnsafeBytes {
            rd_kafka_queue_io_event_enable(queue, wakeup.fd, $0.baseAddress, $0.count)
        }
    }

    // MARK: - API for sources and controls (any task)

    /// The next batch of records; `nil` once the consumer stopped. Suspends
    /// (one continuation for the whole batch) only when nothing is buffered.
    func nextDelivery(for reader: Reader = .all, since epoch: UInt64 = 0) async throws -> Delivery? {
        enum Immediate { case delivery(Delivery?, wakeEngine: Bool), failure(KafkaError), wait }
        let (immediate, released): (Immediate, Bool) = state.withLock { s in
            // Coming back for more means the previous batch was emitted in full: a waiting revoke wants to know.
            let released = s.holding.removeValue(forKey: reader) != nil && !s.revoking.isEmpty
            // Back for more: the batch it held was emitted in full.
            if configuration.storesEmittedOffsets, let emitted = s.lastTaken.removeValue(forKey: reader) {
                s.emittedToStore.merge(emitted, uniquingKeysWith: max)
            }
            if let failure = s.failure { return (.failure(failure), released) }
            if s.phase != .running || isFinished(reader, since: epoch, s) { return (.delivery(nil, wakeEngine: false), released) }
            guard hasRecords(for: reader, s) else { return (.wait, released) }
            let (delivery, wakeEngine) = takeDelivery(&s, for: reader)
            return (.delivery(delivery, wakeEngine: wakeEngine), released)
        }
        if released { wakeup.signal() }
        switch immediate {
        case .delivery(let delivery, let wakeEngine):
            if wakeEngine { wakeup.signal() }
            return delivery
        case .failure(let error):
            throw error
        case .wait:
            return try await withTaskCancellationHandler {
                try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Delivery?, any Error>) in
                    let resumeNow: (Result<Delivery?, any Error>, wakeEngine: Bool)? = state.withLock { s in
                        if let failure = s.failure { return (.failure(failure), false) }
                        if s.phase != .running || isFinished(reader, since: epoch, s) { return (.success(nil), false) }
                        if Task.isCancelled { return (.failure(CancellationError()), false) }
                        if hasRecords(for: reader, s) {
                            let (delivery, wakeEngine) = takeDelivery(&s, for: reader)
                            return (.success(delivery), wakeEngine)
                        }
                        if s.waiters[reader] != nil {
                            return (.failure(KafkaError(.illegalState, "this Kafka source is already being read: a source (or a partition's sub-stream) can be run once")), false)
                        }
                        s.waiters[reader] = continuation
                        return nil
                    }
                    if let (result, wakeEngine) = resumeNow {
                        if wakeEngine { wakeup.signal() }
                        continuation.resume(with: result)
                    }
                }
            } onCancel: {
                let waiter = state.withLock { s in s.waiters.removeValue(forKey: reader) }
                waiter?.resume(throwing: CancellationError())
            }
        }
    }

    /// Takes the next batch out of the buffer (state lock held). `wakeEngine`
    /// is true when the take asks the engine thread to resume partitions.
    func takeDelivery(_ s: inout State, for reader: Reader) -> (Delivery, wakeEngine: Bool) {
        let (taken, flow): ([RecordChunk], ConsumerBufferStateMachine<RecordChunk>.FlowControl)
        switch reader {
        case .all: (taken, flow) = s.buffer.take(maxRecords: configuration.maxBatchSize)
        case .partition(let p): (taken, flow) = s.buffer.take(maxRecords: configuration.maxBatchSize, of: p)
        case .subset(let id):
            var chunks: [RecordChunk] = []
            var records = 0
            var changed: ConsumerBufferStateMachine<RecordChunk>.FlowControl = .none
            for p in s.subsets[id] ?? [] where s.buffer.hasRecords(of: p) {
                guard records < configuration.maxBatchSize else { break }
                let (some, flow) = s.buffer.take(maxRecords: configuration.maxBatchSize - records, of: p)
                chunks += some
                records += some.reduce(0) { $0 + $1.recordCount }
                if flow != .none { changed = flow }
            }
            (taken, flow) = (chunks, changed)
        }
        if flow != .none { s.pendingFlowControl.append(flow) }
        if configuration.storesEmittedOffsets {
            var last: [TopicPartition: Int64] = [:]
            for chunk in taken { last[chunk.topicPartition] = chunk.batch.messages[chunk.range.upperBound - 1]!.pointee.offset + 1 }
            s.lastTaken[reader] = last
        }
        if tracksEmittedOffsets {
            var partitions = Set<TopicPartition>()
            for chunk in taken {
                partitions.insert(chunk.topicPartition)
                s.handedOut[chunk.topicPartition] = chunk.batch.messages[chunk.range.upperBound - 1]!.pointee.offset + 1
            }
            s.holding[reader] = partitions
        }
        return (Delivery(chunks: taken, epoch: revocationEpoch.load(ordering: .acquiring)), flow != .none)
    }

    private func hasRecords(for reader: Reader, _ s: State) -> Bool {
        switch reader {
        case .all: return !s.buffer.isEmpty
        case .partition(let p): return s.buffer.hasRecords(of: p)
        case .subset(let id): return s.subsets[id]?.contains { s.buffer.hasRecords(of: $0) } ?? false
        }
    }

    /// A partition's sub-stream ends when its partition is revoked (a later
    /// assignment of the same partition gets a new sub-stream).
    private func isFinished(_ reader: Reader, since epoch: UInt64, _ s: State) -> Bool {
        switch reader {
        case .all: return false
        case .partition(let p): return !s.assigned.contains(p) || (s.invalidatedAt[p] ?? 0) > epoch
        case .subset(let id): return s.detached.contains(id)
        }
    }

    /// Whether records of `partition` handed out at `epoch` may still be emitted.
    func keeps(_ partition: TopicPartition, takenAt epoch: UInt64) -> Bool {
        state.withLock { s in s.assigned.contains(partition) && (s.invalidatedAt[partition] ?? 0) <= epoch }
    }

    /// A reader dropped records after a revoke or rewind; `firstUnemitted` is the
    /// first record it did not emit, per partition (what a revoke waits to see committed).
    func readerDropped(_ reader: Reader, firstUnemitted: [TopicPartition: Int64], stillHolding: Set<TopicPartition>) {
        guard tracksEmittedOffsets else { return }
        let waiting = state.withLock { s in
            if s.holding[reader] != nil { s.holding[reader] = stillHolding }
            for (p, offset) in firstUnemitted where s.revoking.contains(p) {
                s.firstUnemitted[p] = min(s.firstUnemitted[p] ?? .max, offset)
            }
            return !s.revoking.isEmpty
        }
        if waiting { wakeup.signal() }
    }

    /// Runs `body` on the consumer's thread with the ``RestrictedConsumer``, between batches.
    /// Throws `.shutDown` if the consumer closes before running it, and `.cancelled` if the
    /// calling task is cancelled before it runs.
    func withConsumer<T: Sendable>(_ body: @escaping @Sendable (RestrictedConsumer) throws(KafkaError) -> T) async throws(KafkaError) -> T {
        // Set under the state lock when the command is queued; read by the cancellation handler.
        let queuedID = Atomic<UInt64>(0)
        let result: Result<T, KafkaError> = await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Result<T, KafkaError>, Never>) in
                let command = Command(
                    run: { consumer in
                        do throws(KafkaError) { continuation.resume(returning: .success(try body(consumer))) } catch {
                            continuation.resume(returning: .failure(error))
                        }
                    },
                    refuse: { error in continuation.resume(returning: .failure(error)) })
                let refused: KafkaError? = state.withLock { s in
                    if s.lifecycle.isEnding {
                        return KafkaError(.shutDown, "the consumer is shut down: use it while the stream runs")
                    }
                    if Task.isCancelled { return .cancelledWhileWaiting }
                    queuedID.store(s.queue(command), ordering: .relaxed)
                    return nil
                }
                if let refused { command.refuse(refused) } else { wakeup.signal() }
            }
        } onCancel: {
            // Only a command still queued is withdrawn; one already running completes.
            let withdrawn: Command? = state.withLock { s in
                let id = queuedID.load(ordering: .relaxed)
                guard id != 0, let index = s.commands.firstIndex(where: { $0.id == id }) else { return nil }
                return s.commands.remove(at: index).command
            }
            withdrawn?.refuse(.cancelledWhileWaiting)
        }
        return try result.get()
    }

    /// Queues `work` for the engine thread without waiting for it (a released lease's detach);
    /// dropped if the consumer is closing (closing lets every partition go anyway).
    func enqueue(_ work: @escaping @Sendable (RestrictedConsumer) -> Void) {
        let queued = state.withLock { s -> Bool in
            guard !s.lifecycle.isEnding else { return false }
            _ = s.queue(Command(run: work, refuse: { _ in }))
            return true
        }
        if queued { wakeup.signal() }
    }

    /// Rewinds `offsets`' partitions: records of them buffered or handed out
    /// but not yet emitted are dropped, and reading resumes at the given offsets.
    func rewind(_ offsets: [TopicPartition: Int64]) async throws(KafkaError) {
        try await withConsumer { consumer throws(KafkaError) in
            self.invalidate(Set(offsets.keys))
            try consumer.seek(offsets)
        }
    }

    /// Makes every record of `partitions` buffered or handed out so far unemittable (engine thread).
    func invalidate(_ partitions: Set<TopicPartition>) {
        state.withLock { s in invalidate(partitions, &s) }
    }

    /// ``invalidate(_:)`` with the state lock held: buffered records dropped, records
    /// handed out but not yet emitted made unemittable (a new epoch).
    func invalidate(_ partitions: Set<TopicPartition>, _ s: inout State) {
        let flow = s.buffer.remove(partitions: partitions)
        if flow != .none { s.pendingFlowControl.append(flow) }
        let epoch = revocationEpoch.add(1, ordering: .releasing).newValue
        for p in partitions { s.invalidatedAt[p] = epoch }
    }

    /// Runs the queued ``withConsumer(_:)`` commands (engine thread).
    func serveCommands() {
        let commands = state.withLock { s in
            defer { s.commands.removeAll() }
            return s.commands
        }
        guard !commands.isEmpty else { return }
        let consumer = restrictedConsumer
        for (_, command) in commands { command.run(consumer) }
    }

    var restrictedConsumer: RestrictedConsumer {
        // Unowned (checked): a restricted consumer serves one command or handler call on this engine's thread.
        RestrictedConsumer(handle: handle, timeout: configuration.commitTimeout) { [unowned self] offsets in
            // The application moved these partitions on purpose: a jump back there is no reset.
            for (p, offset) in offsets {
                newestTimestamp[p] = nil
                resetBase[p] = offset >= 0 ? offset : nil
                nextOffsets[p] = offset >= 0 ? offset : nil
            }
        }
    }

    /// The next partitions assigned, for a partitioned source; `nil` once the consumer stopped.
    /// Throws `CancellationError` when the waiting task is cancelled.
    func nextAssignedPartitions() async throws -> [Announcement]? {
        try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<[Announcement]?, any Error>) in
                let now: Result<[Announcement]?, any Error>? = state.withLock { s in
                    if let failure = s.failure { return .failure(failure) }
                    if s.phase != .running { return .success(nil) }
                    if !s.announced.isEmpty {
                        defer { s.announced.removeAll() }
                        return .success(s.announced)
                    }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if s.announcementWaiter != nil {
                        return .failure(KafkaError(.illegalState, "this partitioned source is already being read: a source can be run once"))
                    }
                    s.announcementWaiter = continuation
                    return nil
                }
                if let now { continuation.resume(with: now) }
            }
        } onCancel: {
            let waiter = state.withLock { s in
                defer { s.announcementWaiter = nil }
                return s.announcementWaiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    /// Partitions assigned right now (for partitioned sources and tests).
    func assignedPartitions() -> Set<TopicPartition> {
        state.withLock { $0.assigned }
    }

    /// Registers a committer to be asked for an immediate commit while a revoke waits for it.
    /// The committer holds the consumer open until it detaches (``removeCommitRequestObserver(_:)``),
    /// so what it flushes after its upstream ended still lands.
    func addCommitRequestObserver(_ id: ObjectIdentifier, _ flush: @escaping @Sendable () -> Void) {
        state.withLock { s in
            s.commitRequestObservers[id] = flush
            s.lifecycle.committerAttached(id)
        }
    }

    var requestsImmediateCommit: Bool { awaitingRevokeCommits.load(ordering: .relaxed) }

    /// A committer has flushed: if it was the last thing holding an ended stream's consumer, the consumer closes.
    func removeCommitRequestObserver(_ id: ObjectIdentifier) {
        let waiters = state.withLock { s in
            s.commitRequestObservers.removeValue(forKey: id)
            return perform(s.lifecycle.committerDetached(id), &s)
        }
        finish(waiters)
    }

    func commit(_ offsets: [TopicPartition: CommitPosition]) async throws(KafkaError) {
        guard !offsets.isEmpty else { return }
        do {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
                let now = ContinuousClock.now
                let failure: KafkaError? = state.withLock { s in
                    if let failure = s.failure { return failure }
                    if s.phase == .closing || s.phase == .closed {
                        return KafkaError(.shutDown, "cannot commit \(offsets.count) offset(s): the consumer was shut down; commit before shutdown (drainAndShutdown does)")
                    }
                    let id = s.nextCommitID
                    s.nextCommitID += 1
                    s.commits.enqueue(.init(id: id, offsets: offsets, deadline: now + configuration.commitTimeout, started: now))
                    s.commitWaiters[id] = continuation
                    return nil
                }
                if let failure { continuation.resume(throwing: failure) } else { wakeup.signal() }
            }
        } catch let error as KafkaError {
            throw error
        } catch {
            throw KafkaError(.commitFailed, "commit failed: \(error)")
        }
    }

    func commitAndForget(_ offsets: [TopicPartition: CommitPosition]) {
        guard !offsets.isEmpty else { return }
        let now = ContinuousClock.now
        state.withLock { s in
            guard s.failure == nil, s.phase == .running || s.phase == .stopped else { return }
            let id = s.nextCommitID
            s.nextCommitID += 1
            s.commits.enqueue(.init(id: id, offsets: offsets, deadline: now + configuration.commitTimeout, started: now))
        }
        wakeup.signal()
    }

    // MARK: Lifecycle (any task; see ConsumerLifecycleStateMachine)

    /// An iterator starts reading: it holds the consumer until ``releaseLease(_:)``.
    /// False when the consumer is already closing (the iterator completes at once).
    func takeLease() -> Bool {
        state.withLock { $0.lifecycle.leaseTaken() }
    }

    /// An iterator's stream ended, however it ended. A source sharing the consumer lets its
    /// partitions go; the last lease of a consumer its sources own completes them and closes it
    /// once its committers have flushed.
    func releaseLease(_ reader: Reader) {
        if case .subset(let id) = reader {
            stopSubset(id)
            enqueue { [self] _ in detach(id) }
        }
        let waiters = state.withLock { s in
            perform(s.lifecycle.leaseReleased(now: .now, committerGrace: configuration.closeTimeout), &s)
        }
        finish(waiters)
    }

    /// Completes the sources; the consumer stays in its group so that commits still land,
    /// until nothing holds it any more, or `closeAfter` at the latest (`nil`: until shutdown).
    func stop(closeAfter: Duration?) {
        let waiters = state.withLock { s in
            perform(s.lifecycle.stop(now: .now, closeAfter: closeAfter), &s)
        }
        finish(waiters)
    }

    /// Starts closing without waiting (an owner let go): leaves the group, destroys the consumer.
    func beginShutdown() {
        let waiters = state.withLock { s in perform(s.lifecycle.shutdown(), &s) }
        finish(waiters)
    }

    /// Carries out a lifecycle action (state lock held); returns the readers to complete.
    private func perform(_ action: ConsumerLifecycleStateMachine.Action, _ s: inout State) -> Waiters {
        switch action {
        case .none:
            return Waiters()
        case .close:
            var none = Waiters()
            none.wakeEngine = true
            return none
        case .completeSources, .completeSourcesAndClose:
            s.buffer.removeAll()
            s.pendingFlowControl.append(.pauseAll)
            var waiters = Waiters(taking: &s)
            waiters.wakeEngine = true
            return waiters
        }
    }

    /// Resumes completed readers and wakes the engine thread to act (outside the lock).
    private func finish(_ waiters: Waiters) {
        waiters.resume(with: .success(nil))
        if waiters.wakeEngine { wakeup.signal() }
    }

    /// Every suspended reader, taken out of the state to be resumed outside the lock.
    struct Waiters {
        var readers: [UnsafeContinuation<Delivery?, any Error>] = []
        var announcement: UnsafeContinuation<[Announcement]?, any Error>?
        var wakeEngine = false

        init() {}

        init(taking s: inout State) {
            readers = Array(s.waiters.values)
            s.waiters.removeAll()
            announcement = s.announcementWaiter
            s.announcementWaiter = nil
        }

        func resume(with result: Result<Delivery?, any Error>) {
            for reader in readers { reader.resume(with: result) }
            switch result {
            case .success: announcement?.resume(returning: nil)
            case .failure(let error): announcement?.resume(throwing: error)
            }
        }
    }

    /// Stops, leaves the group, and destroys the consumer. Returns when done
    /// (bounded by `closeTimeout` for commits and again for leaving the group).
    func shutdown() async {
        beginShutdown()
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let done: Bool = state.withLock { s in
                if s.phase == .closed { return true }
                s.closeWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    var phase: Phase { state.withLock { $0.phase } }

    /// The latest statistics JSON librdkafka emitted, if statistics are enabled.
    var statisticsJSON: String? { state.withLock { $0.statisticsJSON } }

    /// Bytes buffered ahead of the sources, and the most ever buffered.
    var bufferedBytes: (current: Int, highWater: Int) {
        state.withLock { ($0.buffer.bufferedBytes, $0.buffer.highWaterBytes) }
    }

    // MARK: - The engine thread

    private func run() {
        let scratchCapacity = configuration.maxBatchSize
        let scratch = UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>.allocate(capacity: scratchCapacity)
        defer { scratch.deallocate() }
        if !configuration.subscription.isGroupSubscription { assignManually() }
        while true {
            wakeup.clear()
            if state.withLock({ $0.phase == .closing }) { break }
            serveCommands()
            applyFlowControl()
            serveCommitResults()
            sendCommits()
            storeEmittedOffsets()
            drainConsumerQueue(scratch, capacity: scratchCapacity)
            applyFlowControl()
            housekeeping()
            if state.withLock({ $0.phase == .closing }) { break }
            wakeup.wait(timeoutMilliseconds: waitTimeout())
        }
        close(scratch, capacity: scratchCapacity)
        // They refer to this engine (their committer): the engine's part of that cycle ends with its thread.
        consumedPartitions.removeAll()
    }

    private func waitTimeout() -> Int32 {
        // A bounded wait keeps commit deadlines and reachability checks timely
        // and satisfies librdkafka's max.poll.interval.ms; data and commands wake us at once.
        var timeout: Int32 = 250
        if let deadline = state.withLock({ $0.commits.earliestDeadline }) {
            let remaining = (deadline - .now).milliseconds
            timeout = min(timeout, max(1, remaining))
        }
        return timeout
    }

    private func drainConsumerQueue(_ scratch: UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>, capacity: Int) {
        // Callbacks, errors, and records fetched before their partition's queue was forwarded.
        drain(consumerQueue, scratch, capacity: capacity) { capacity }
        // Records: only while the buffer has room, and no more than fit. Left in librdkafka
        // otherwise, where its own byte limit (queued.max.messages.kbytes) bounds them.
        drain(messageQueue, scratch, capacity: capacity) {
            let room = self.state.withLock { s in
                s.buffer.isPaused || s.phase != .running ? 0 : s.buffer.pauseThreshold - s.buffer.bufferedBytes
            }
            guard room > 0 else { return 0 }
            return min(capacity, max(1, room / max(1, self.recentRecordBytes)))
        }
    }

    private func drain(
        _ queue: OpaquePointer, _ scratch: UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>, capacity: Int,
        while room: () -> Int
    ) {
        while true {
            let fitting = room()
            guard fitting > 0 else { return }
            let n = rd_kafka_consume_batch_queue(queue, 0, scratch, fitting)
            if n > 0 { ingest(scratch, count: n) }
            // A batch can end early (transaction markers) with more queued: only an empty queue ends the drain.
            if n <= 0 && rd_kafka_queue_length(queue) == 0 { return }
            if n < fitting && rd_kafka_queue_length(queue) == 0 { return }
        }
    }

    private func ingest(_ scratch: UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>, count: Int) {
        let batch = MessageBatch(copying: scratch, count: count, client: clientOwner!)
        var chunks: [RecordChunk] = []
        var runStart = 0
        var runBytes = 0
        var runKey: (OpaquePointer?, Int32)? = nil
        func closeRun(at end: Int) {
            guard let key = runKey, end > runStart, let rkt = key.0 else { return }
            let partition = consumedPartition(rkt, key.1)
            batch.setTopic(partition.topicPartition.topic, for: runStart..<end)
            chunks.append(RecordChunk(batch: batch, range: runStart..<end, partition: partition, byteCount: runBytes))
        }
        for i in 0..<count {
            let message = batch.messages[i]!
            if message.pointee.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                closeRun(at: i)
                runKey = nil
                runStart = i + 1
                runBytes = 0
                handleConsumeError(message)
                continue
            }
            let key = (message.pointee.rkt, message.pointee.partition)
            if let current = runKey, current.0 != key.0 || current.1 != key.1 {
                closeRun(at: i)
                runStart = i
                runBytes = 0
            }
            runKey = key
            runBytes += message.pointee.len + message.pointee.key_len
        }
        closeRun(at: count)
        if !resumedUnchecked.isEmpty { chunks = dropRecordsReadBefore(chunks) }
        if configuration.offsetResetProtection != nil { chunks = protectAgainstOffsetReset(chunks) }
        var batchBytes = 0
        for chunk in chunks {
            batchBytes += chunk.byteCount
            nextOffsets[chunk.topicPartition] = chunk.batch.messages[chunk.range.upperBound - 1]!.pointee.offset + 1
        }
        if !chunks.isEmpty { recentRecordBytes = max(1, batchBytes / max(1, count)) }
        guard !chunks.isEmpty else { return }
        unreachableSince = nil
        let ready: [(UnsafeContinuation<Delivery?, any Error>, Delivery)] = state.withLock { s in
            guard s.phase == .running else { return [] }
            for chunk in chunks where s.assigned.contains(chunk.topicPartition) {
                let flow = s.buffer.append(chunk)
                if flow != .none { s.pendingFlowControl.append(flow) }
            }
            guard !s.waiters.isEmpty, !s.buffer.isEmpty else { return [] }
            // On the engine thread itself: the loop applies any flow control right after.
            var ready: [(UnsafeContinuation<Delivery?, any Error>, Delivery)] = []
            for reader in Array(s.waiters.keys) where hasRecords(for: reader, s) {
                ready.append((s.waiters.removeValue(forKey: reader)!, takeDelivery(&s, for: reader).0))
            }
            return ready
        }
        for (continuation, delivery) in ready { continuation.resume(returning: delivery) }
    }

    /// librdkafka 2.0.2 decides to fetch resumed partitions only at its broker threads' next
    /// periodic wake-up (up to a second later), so each pause/resume cycle stalled the stream. Any
    /// request to the partitions' leaders wakes them: a look-up of their latest offsets, sent off
    /// this thread (it blocks until answered) and not waited for.
    private func wakeFetchers(_ partitions: Set<TopicPartition>) {
        guard let owner = clientOwner else { return }
        let list = PartitionList.make(offsets: Dictionary(uniqueKeysWithValues: partitions.map { ($0, Int64(RD_KAFKA_OFFSET_END)) }))
        let request = FetcherWakeUp(owner: owner, list: list)
        fetcherWakeUps.submit { request.send() }
    }

    /// After a resume: records of a partition already read (librdkafka went back) are dropped,
    /// and the partition is sought to where it was.
    private func dropRecordsReadBefore(_ chunks: [RecordChunk]) -> [RecordChunk] {
        var result: [RecordChunk] = []
        var seekBack: [TopicPartition: Int64] = [:]
        for chunk in chunks {
            let p = chunk.topicPartition
            guard resumedUnchecked.contains(p), let next = nextOffsets[p] else {
                result.append(chunk)
                continue
            }
            var start = chunk.range.lowerBound
            while start < chunk.range.upperBound, chunk.batch.messages[start]!.pointee.offset < next { start += 1 }
            if start == chunk.range.lowerBound {
                resumedUnchecked.remove(p)
                result.append(chunk)
                continue
            }
            seekBack[p] = next
            if start < chunk.range.upperBound {
                resumedUnchecked.remove(p)
                var bytes = 0
                for i in start..<chunk.range.upperBound { bytes += chunk.batch.messages[i]!.pointee.len + chunk.batch.messages[i]!.pointee.key_len }
                result.append(RecordChunk(batch: chunk.batch, range: start..<chunk.range.upperBound, partition: chunk.partition, byteCount: bytes))
            }
        }
        if !seekBack.isEmpty {
            logger.debug("a resumed partition went back to records already read: skipped them", metadata: ["positions": "\(seekBack)"])
            let list = PartitionList.make(offsets: seekBack.filter { p, _ in !result.contains { $0.topicPartition == p } })
            if list.pointee.cnt > 0, let error = rd_kafka_seek_partitions(handle, list, 0) {
                logger.warning("restoring the position of a resumed partition", metadata: ["error": "\(KafkaError.consuming(error, "seek"))"])
            }
            rd_kafka_topic_partition_list_destroy(list)
        }
        return result
    }

    /// The partition's shared description for chunks and offsets (engine thread).
    private func consumedPartition(_ rkt: OpaquePointer, _ partition: Int32) -> ConsumedPartition {
        let key = TopicPartition(topicName(rkt), partition)
        if let known = consumedPartitions[key] { return known }
        let made = ConsumedPartition(key, groupId: configuration.groupId ?? "", committer: self)
        consumedPartitions[key] = made
        return made
    }

    private func topicName(_ rkt: OpaquePointer) -> String {
        if let name = topicNames[rkt] { return name }
        let name = String(cString: rd_kafka_topic_name(rkt))
        topicNames[rkt] = name
        return name
    }

    private func handleConsumeError(_ message: UnsafeMutablePointer<rd_kafka_message_t>) {
        let err = message.pointee.err
        if err == RD_KAFKA_RESP_ERR__PARTITION_EOF { return }
        let topic = message.pointee.rkt.map { topicName($0) } ?? "?"
        let reason = String(cString: rd_kafka_message_errstr(message))
        switch err {
        case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
            fail(KafkaError(.kafka, "not authorised to consume topic \(topic): \(reason). Grant the principal READ on the topic and the group.", code: Int32(err.rawValue)))
        default:
            logger.warning("consumer error", metadata: ["topic": "\(topic)", "error": "\(secretValues.scrub(reason))"])
        }
    }

    /// Fails the stream: the waiting source receives `error`, commits fail.
    func fail(_ error: KafkaError) {
        let (waiters, commitWaiters): (Waiters, [UnsafeContinuation<Void, any Error>]) = state.withLock { s in
            guard s.failure == nil else { return (Waiters(), []) }
            s.failure = error
            s.buffer.removeAll()
            let ids = s.commits.drainAll()
            let commitWaiters = ids.compactMap { s.commitWaiters.removeValue(forKey: $0) }
            return (Waiters(taking: &s), commitWaiters)
        }
        logger.error("consumer failed", metadata: ["error": "\(error)"])
        waiters.resume(with: .failure(error))
        for c in commitWaiters { c.resume(throwing: error) }
    }

    /// Brings librdkafka's paused partitions in line with the buffer: all of
    /// them while over budget (or stopped), else those paused on their own.
    func applyFlowControl(force: Bool = false) {
        let wanted: (desired: Set<TopicPartition>, assigned: Set<TopicPartition>)? = state.withLock { s in
            guard force || !s.pendingFlowControl.isEmpty else { return nil }
            s.pendingFlowControl.removeAll()
            if s.buffer.isPaused || s.phase != .running { return (s.assigned, s.assigned) }
            return (s.buffer.pausedPartitions.intersection(s.assigned), s.assigned)
        }
        guard let (desired, assigned) = wanted else { return }
        appliedPaused.formIntersection(assigned)
        let toPause = desired.subtracting(appliedPaused)
        let toResume = appliedPaused.subtracting(desired)
        if !toPause.isEmpty {
            let list = PartitionList.make(toPause)
            rd_kafka_pause_partitions(handle, list)
            rd_kafka_topic_partition_list_destroy(list)
        }
        if !toResume.isEmpty {
            let list = PartitionList.make(toResume)
            rd_kafka_resume_partitions(handle, list)
            rd_kafka_topic_partition_list_destroy(list)
            // librdkafka 2.0 can resume a partition from an older position (seen restarting at 0):
            // the first records after the resume are checked against the last record read.
            resumedUnchecked.formUnion(toResume)
            wakeFetchers(toResume)
        }
        appliedPaused = desired
    }

    // MARK: Commits

    /// Hands librdkafka the offsets of records the sources emitted, for its auto-commit
    /// (``Configuration/storesEmittedOffsets``; engine thread). Partitions no longer assigned are
    /// left alone: their next owner reads from the last commit.
    func storeEmittedOffsets() {
        guard configuration.storesEmittedOffsets else { return }
        let offsets: [TopicPartition: Int64] = state.withLock { s in
            defer { s.emittedToStore.removeAll() }
            return s.emittedToStore.filter { s.assigned.contains($0.key) }
        }
        guard !offsets.isEmpty else { return }
        let list = PartitionList.make(offsets: offsets)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_offsets_store(handle, list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            logger.debug("storing emitted offsets", metadata: ["error": "\(String(cString: rd_kafka_err2str(err)))"])
        }
    }

    func sendCommits() {
        if case .holding(let since) = cooperativeRejoin {
            guard ContinuousClock.now - since >= commitHoldLimit || state.withLock({ $0.phase == .closing }) else { return }
            cooperativeRejoin = .none
        }
        let (send, refused): (CommitStateMachine.Send?, [(UnsafeContinuation<Void, any Error>, Set<TopicPartition>)]) = state.withLock { s in
            let (send, notAssigned) = s.commits.nextSend(assigned: s.revoking.isEmpty ? s.assigned : s.assigned.union(s.revoking))
            return (send, notAssigned.compactMap { id, partitions in s.commitWaiters.removeValue(forKey: id).map { ($0, partitions) } })
        }
        // Offsets of partitions no longer assigned are not sent (the new owner reads from the
        // last commit), and their committers are told so: never a success that did not happen.
        for (continuation, partitions) in refused { continuation.resume(throwing: KafkaError.notAssigned(partitions)) }
        guard let send else { return }
        sendStarted[send.sendID] = .now
        sentOffsets[send.sendID] = send.offsets.mapValues(\.nextOffset)
        let list = PartitionList.make(send.offsets)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_commit_queue(handle, list, commitQueue, nil, UnsafeMutableRawPointer(bitPattern: UInt(send.sendID)))
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            completeCommit(sendID: send.sendID, err: err, partitionErrors: [])
        }
    }

    func serveCommitResults() {
        while let event = rd_kafka_queue_poll(commitQueue, 0) {
            defer { rd_kafka_event_destroy(event) }
            guard rd_kafka_event_type(event) == RD_KAFKA_EVENT_OFFSET_COMMIT else { continue }
            let sendID = UInt64(UInt(bitPattern: rd_kafka_event_opaque(event)))
            let err = rd_kafka_event_error(event)
            let partitionErrors = PartitionList.errors(rd_kafka_event_topic_partition_list(event))
            completeCommit(sendID: sendID, err: err, partitionErrors: partitionErrors)
        }
    }

    private func completeCommit(sendID: UInt64, err: rd_kafka_resp_err_t, partitionErrors: [(TopicPartition, rd_kafka_resp_err_t)]) {
        let effective = err != RD_KAFKA_RESP_ERR_NO_ERROR ? err : (partitionErrors.first?.1 ?? RD_KAFKA_RESP_ERR_NO_ERROR)
        var error: KafkaError? = nil
        if effective == RD_KAFKA_RESP_ERR__NO_OFFSET {
            error = nil  // nothing new to commit: the broker already has these offsets
        } else if effective != RD_KAFKA_RESP_ERR_NO_ERROR {
            let which = partitionErrors.map { "\($0.0)" }.joined(separator: ", ")
            error = KafkaError.fromCode(effective, "committing offsets\(which.isEmpty ? "" : " of \(which)")", kind: .commitFailed)
        }
        let now = ContinuousClock.now
        if let started = sendStarted.removeValue(forKey: sendID), now - started > configuration.commitTimeWarning {
            logger.warning("slow commit", metadata: ["duration": "\(now - started)", "threshold": "\(configuration.commitTimeWarning)"])
        }
        let retriable = Self.isRetriableCommitError(effective)
        let refusedByRebalance = Self.isRebalanceCommitError(effective)
        if refusedByRebalance { commitsRefusedByRebalance = true }
        let sent = sentOffsets.removeValue(forKey: sendID)
        if let offsets = sent, error == nil {
            state.withLock { s in
                for (p, next) in offsets { s.committedNext[p] = max(s.committedNext[p] ?? -1, next) }
            }
            if configuration.offsetResetProtection != nil {
                for (p, next) in offsets { resetBase[p] = max(resetBase[p] ?? -1, next) }
            }
        }
        let resumptions: [(UnsafeContinuation<Void, any Error>, KafkaError?)] = state.withLock { s in
            switch s.commits.completed(sendID: sendID, error: error, retriable: retriable, now: now) {
            case .succeeded(let ids, let notAssigned):
                return ids.compactMap { id in
                    s.commitWaiters.removeValue(forKey: id).map { ($0, notAssigned[id].map { KafkaError.notAssigned($0) }) }
                }
            case .failed(let ids, let e):
                s.forgetfulCommitFailures += ids.filter { s.commitWaiters[$0] == nil }.count
                return ids.compactMap { id in s.commitWaiters.removeValue(forKey: id).map { ($0, e) } }
            case .retrying:
                return []
            }
        }
        if let error, !retriable { logger.warning("commit failed", metadata: ["error": "\(error)"]) }
        for (continuation, e) in resumptions {
            if let e { continuation.resume(throwing: e) } else { continuation.resume() }
        }
    }

    /// The coordinator refused the commit because the group is rebalancing or has moved to a new generation.
    static func isRebalanceCommitError(_ err: rd_kafka_resp_err_t) -> Bool {
        err == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS || err == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION || err == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID
    }

    static func isRetriableCommitError(_ err: rd_kafka_resp_err_t) -> Bool {
        switch err {
        case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
             RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
             RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__WAIT_COORD,
             RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN,
             // The group is rebalancing: once it settles the commit goes out again with the new
             // generation (offsets of partitions that moved away are then not sent).
             RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS, RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION,
             RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID:
            return true
        default:
            return false
        }
    }

    func housekeeping() {
        let now = ContinuousClock.now
        let expired: [(UnsafeContinuation<Void, any Error>, CommitStateMachine.Request, Set<TopicPartition>)] = state.withLock { s in
            s.commits.expire(now: now).compactMap { r in
                s.commitWaiters.removeValue(forKey: r.id).map { ($0, r, s.assigned) }
            }
        }
        for (continuation, request, assigned) in expired {
            let partitions = Set(request.offsets.keys)
            let names = partitions.sorted().map(\.description).joined(separator: ", ")
            if let refusal = request.lastRefusal {
                // Refused until the deadline: say by whom and why, not a timeout; partitions that
                // moved away meanwhile are not this consumer's to commit any more.
                let moved = partitions.subtracting(assigned)
                continuation.resume(throwing: KafkaError(
                    moved.isEmpty ? .commitFailed : .notAssigned,
                    "commit of \(names) refused by the group coordinator until the commitTimeout (\(configuration.commitTimeout)): \(refusal.message)"
                        + (moved.isEmpty ? "" : "; \(moved.sorted().map(\.description).joined(separator: ", ")) moved to another member, which reads them again from the last commit"),
                    code: refusal.code, partitions: moved.isEmpty ? partitions : moved))
            } else {
                continuation.resume(throwing: KafkaError(
                    .commitTimeout,
                    "commit of \(names) not acknowledged within \(configuration.commitTimeout); the coordinator may be unreachable. Raise commitTimeout or check the cluster",
                    partitions: partitions))
            }
        }
        checkReachability(now: now)
        let waiters = state.withLock { s in perform(s.lifecycle.tick(now: now), &s) }
        finish(waiters)
    }

    private func checkReachability(now: ContinuousClock.Instant) {
        guard let since = unreachableSince, let limit = configuration.brokerUnreachableTimeout else { return }
        if let last = lastReachabilityProbe, now - last < .seconds(1) { return }
        lastReachabilityProbe = now
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(handle, 0, nil, &metadata, 200)
        if err == RD_KAFKA_RESP_ERR_NO_ERROR {
            if let metadata { rd_kafka_metadata_destroy(metadata) }
            unreachableSince = nil
            logger.info("brokers reachable again")
            return
        }
        if now - since >= limit {
            let servers = configuration.properties["bootstrap.servers"] ?? "(bootstrap.servers not set)"
            fail(KafkaError(
                .brokerUnreachable,
                "no Kafka broker reachable for \(limit) at \(servers); check bootstrap.servers and the network, or raise brokerUnreachableTimeout (nil waits forever)"))
        }
    }

    // MARK: Callbacks (engine thread, inside consume_batch_queue)

    fileprivate func onError(_ err: Int32, _ reason: String) {
        let code = rd_kafka_resp_err_t(err)
        if code == RD_KAFKA_RESP_ERR__FATAL {
            var buffer = [CChar](repeating: 0, count: 512)
            let original = rd_kafka_fatal_error(handle, &buffer, buffer.count)
            fail(KafkaError(.fatal, "librdkafka fatal error \(String(cString: rd_kafka_err2name(original))): \(secretValues.scrub(String(cString: buffer)))", code: Int32(original.rawValue)))
            return
        }
        if code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || code == RD_KAFKA_RESP_ERR__RESOLVE {
            if unreachableSince == nil { unreachableSince = .now }
        }
        logger.warning("kafka error", metadata: ["code": "\(String(cString: rd_kafka_err2name(code)))", "reason": "\(secretValues.scrub(reason))"])
    }

    fileprivate func onStatistics(_ json: String) {
        state.withLock { $0.statisticsJSON = json }
    }

    // MARK: Close

    private func close(_ scratch: UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>, capacity: Int) {
        // Commits already handed to us get a chance to land before we leave the group.
        let commitDeadline = ContinuousClock.now + configuration.closeTimeout
        while state.withLock({ $0.commits.hasWork && $0.failure == nil }), ContinuousClock.now < commitDeadline {
            wakeup.clear()
            serveCommitResults()
            sendCommits()
            housekeeping()
            let n = rd_kafka_consume_batch_queue(consumerQueue, 0, scratch, capacity)
            for i in 0..<max(0, n) { rd_kafka_message_destroy(scratch[i]) }
            wakeup.wait(timeoutMilliseconds: 50)
        }
        let deadline = ContinuousClock.now + configuration.closeTimeout
        var closedCleanly = false
        // Closing commits what is stored (auto-commit): the records emitted up to now.
        storeEmittedOffsets()
        stopHandler()
        if let error = rd_kafka_consumer_close_queue(handle, consumerQueue) {
            logger.warning("closing consumer", metadata: ["error": "\(KafkaError.consuming(error, "close"))"])
        } else {
            while ContinuousClock.now < deadline {
                wakeup.clear()
                let n = rd_kafka_consume_batch_queue(consumerQueue, 0, scratch, capacity)
                for i in 0..<max(0, n) { rd_kafka_message_destroy(scratch[i]) }
                if rd_kafka_consumer_closed(handle) != 0 { closedCleanly = true; break }
                wakeup.wait(timeoutMilliseconds: 50)
            }
        }
        leftGroupCleanly.store(closedCleanly, ordering: .releasing)
        if !closedCleanly { logger.warning("consumer did not leave its group within closeTimeout", metadata: ["closeTimeout": "\(configuration.closeTimeout)"]) }
        let (commitWaiters, closeWaiters, waiters, commands) = state.withLock { s in
            s.lifecycle.closed()
            let ids = s.commits.drainAll()
            let commitWaiters = ids.compactMap { s.commitWaiters.removeValue(forKey: $0) }
            let closeWaiters = s.closeWaiters
            s.closeWaiters.removeAll()
            let waiters = Waiters(taking: &s)
            s.buffer.removeAll()
            // Queued after the loop's last serving: refused, so that no caller waits forever.
            let commands = s.commands
            s.commands.removeAll()
            return (commitWaiters, closeWaiters, waiters, commands)
        }
        for (_, command) in commands { command.refuse(KafkaError(.shutDown, "the consumer closed before this call ran: use it while the stream runs")) }
        rd_kafka_queue_io_event_enable(consumerQueue, -1, nil, 0)
        rd_kafka_queue_io_event_enable(commitQueue, -1, nil, 0)
        rd_kafka_queue_io_event_enable(messageQueue, -1, nil, 0)
        rd_kafka_queue_destroy(messageQueue)
        rd_kafka_queue_destroy(commitQueue)
        rd_kafka_queue_destroy(consumerQueue)
        // Nothing polls the handle from here on, so no callback can reach the engine.
        callbackTarget.engine = nil
        // Wake-ups already sent hold the handle's owner; the thread ends after them.
        fetcherWakeUps.stop()
        clientOwner?.destroyFlags = closedCleanly ? 0 : Int32(RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE)
        clientOwner = nil
        waiters.resume(with: .success(nil))
        configuration.events?.finish()
        for c in commitWaiters { c.resume(throwing: KafkaError(.shutDown, "the consumer closed before this commit was acknowledged")) }
        for c in closeWaiters { c.resume() }
    }
}

/// One offsets look-up sent to wake the broker threads after a resume; it keeps
/// the client alive until answered and owns its partition list.
private struct FetcherWakeUp: @unchecked Sendable {
    let owner: ClientHandleOwner
    let list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>

    func send() {
        _ = rd_kafka_offsets_for_times(owner.handle, list, 1000)
        rd_kafka_topic_partition_list_destroy(list)
    }
}

/// The opaque librdkafka passes to callbacks. It exists before the engine
/// (librdkafka needs it at creation) and refers back to it unowned: the engine
/// outlives the handle, which its own thread destroys. (Not `weak`: a weak
/// reference would give the engine a refcount side table and slow down every
/// retain of it, one per committable record.)
final class CallbackTarget: @unchecked Sendable {
    // Unmanaged (unretained): set once the engine is built, cleared before it can be freed
    // (at the end of its thread's close, or on a failed init); only its thread reads it.
    var engine: Unmanaged<ConsumerEngine>?
}

private func engine(_ opaque: UnsafeMutableRawPointer?) -> ConsumerEngine? {
    // The opaque is the CallbackTarget, which the handle's owner keeps alive until the handle is destroyed.
    opaque.flatMap { Unmanaged<CallbackTarget>.fromOpaque($0).takeUnretainedValue().engine?.takeUnretainedValue() }
}

private let engineRebalanceCallback: @convention(c) (
    OpaquePointer?, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, UnsafeMutableRawPointer?
) -> Void = { _, err, partitions, opaque in
    engine(opaque)?.onRebalance(err, partitions)
}

private let engineErrorCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Void = {
    _, err, reason, opaque in
    engine(opaque)?.onError(err, reason.map { String(cString: $0) } ?? "")
}

private let engineStatisticsCallback: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?, Int, UnsafeMutableRawPointer?) -> Int32 = {
    _, json, length, opaque in
    if let json {
        let text = String(decoding: UnsafeRawBufferPointer(start: json, count: length), as: UTF8.self)
        engine(opaque)?.onStatistics(text)
    }
    return 0
}
