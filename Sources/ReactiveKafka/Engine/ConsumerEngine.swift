import CRdKafka
import Foundation
import Logging
import Synchronization

/// The one owner of a librdkafka consumer: Alpakka's `KafkaConsumerActor`.
///
/// A dedicated thread (never the cooperative pool) runs the consumer: it
/// sleeps in `poll(2)` on an eventfd that librdkafka signals when records,
/// callbacks or commit results arrive, drains them in batches with
/// `rd_kafka_consume_batch_queue`, and serves commands from Swift tasks.
/// Sources take records in whole batches (one continuation per batch), and
/// the buffer's byte budget pauses and resumes partitions (back-pressure that
/// keeps the consumer in its group). Every librdkafka call on the handle is
/// made from this thread, except the thread-safe signalling calls.
final class ConsumerEngine: OffsetCommitter, @unchecked Sendable {
    struct Configuration: Sendable {
        var properties: [String: String]
        var topics: [String]
        var groupId: String
        var maxBufferedBytes: Int
        var maxBatchSize: Int
        var commitTimeout: Duration
        var commitTimeWarning: Duration
        var closeTimeout: Duration
        var brokerUnreachableTimeout: Duration?
        var logger: Logger
    }

    /// What a source receives: chunks of records and the revocation epoch they are valid for.
    struct Delivery: @unchecked Sendable {
        let chunks: [RecordChunk]
        let epoch: UInt64
    }

    enum Phase: Equatable {
        case running
        /// Sources complete; the consumer stays in the group so commits land.
        case stopped
        /// Leaving the group and tearing down.
        case closing
        case closed
    }

    private struct State {
        var buffer: ConsumerBufferStateMachine<RecordChunk>
        var waiter: UnsafeContinuation<Delivery?, any Error>?
        var phase: Phase = .running
        var failure: KafkaError?
        var assigned: Set<TopicPartition> = []
        var commits = CommitStateMachine()
        var commitWaiters: [CommitStateMachine.RequestID: UnsafeContinuation<Void, any Error>] = [:]
        var nextCommitID: CommitStateMachine.RequestID = 1
        var pendingFlowControl: [ConsumerBufferStateMachine<RecordChunk>.FlowControl] = []
        var closeWaiters: [UnsafeContinuation<Void, Never>] = []
        var statisticsJSON: String?
        var forgetfulCommitFailures = 0
    }

    let configuration: Configuration
    private let handle: OpaquePointer
    /// Destroys `handle` once the engine and every fetched batch have let go (see ``ClientHandleOwner``).
    private var clientOwner: ClientHandleOwner?
    private let consumerQueue: OpaquePointer
    private let commitQueue: OpaquePointer
    /// Assigned partitions' fetch queues are forwarded here, away from the
    /// consumer queue, so records can be left in librdkafka while the buffer is
    /// over budget without starving callbacks and events.
    private let messageQueue: OpaquePointer
    private let wakeup: WakeupSignal
    private let callbackTarget: CallbackTarget
    private let state: Mutex<State>
    /// Incremented on every revocation; a source re-checks its records against
    /// the assignment when it changes, so no record is emitted after its
    /// partition was revoked.
    let revocationEpoch = Atomic<UInt64>(0)
    /// Whether closing completed librdkafka's consumer close (which leaves the group).
    let leftGroupCleanly = Atomic<Bool>(false)
    private var logger: Logger { configuration.logger }

    // Engine-thread-only state.
    private var topicNames: [OpaquePointer: String] = [:]
    private var unreachableSince: ContinuousClock.Instant?
    private var lastReachabilityProbe: ContinuousClock.Instant?
    private var sendStarted: [UInt64: ContinuousClock.Instant] = [:]

    /// Creates the consumer, subscribes, and starts its thread.
    init(configuration: Configuration, statisticsInterval: Duration?) throws(KafkaError) {
        self.configuration = configuration
        var properties = configuration.properties
        // With manual commits the engine decides what is committed: offsets of records
        // merely buffered must never be stored. (A plain source with auto-commit keeps
        // librdkafka's at-most-once store-on-read.)
        if properties["enable.auto.commit"] == "false" {
            properties["enable.auto.offset.store"] = properties["enable.auto.offset.store"] ?? "false"
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
        self.wakeup = try WakeupSignal()
        self.state = Mutex(State(buffer: ConsumerBufferStateMachine(maxBufferedBytes: configuration.maxBufferedBytes)))

        // librdkafka hands this box to the C callbacks; it points back to the engine once built.
        let callbackTarget = CallbackTarget()
        self.callbackTarget = callbackTarget
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(callbackTarget).toOpaque())
        rd_kafka_conf_set_rebalance_cb(conf, engineRebalanceCallback)
        rd_kafka_conf_set_error_cb(conf, engineErrorCallback)
        if statisticsInterval != nil { rd_kafka_conf_set_stats_cb(conf, engineStatisticsCallback) }
        var errstr = [CChar](repeating: 0, count: 512)
        guard let handle = rd_kafka_new(RD_KAFKA_CONSUMER, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(.invalidConfiguration, "could not create the consumer: \(String(cString: errstr))")
        }
        self.handle = handle
        self.clientOwner = ClientHandleOwner(handle)
        rd_kafka_poll_set_consumer(handle)
        self.consumerQueue = rd_kafka_queue_get_consumer(handle)
        self.commitQueue = rd_kafka_queue_new(handle)
        self.messageQueue = rd_kafka_queue_new(handle)
        callbackTarget.engine = Unmanaged.passUnretained(self)
        Self.enableWakeup(consumerQueue, wakeup)
        Self.enableWakeup(commitQueue, wakeup)
        Self.enableWakeup(messageQueue, wakeup)

        let topics = PartitionList.make(configuration.topics.map { TopicPartition($0, RD_KAFKA_PARTITION_UA) })
        let err = rd_kafka_subscribe(handle, topics)
        rd_kafka_topic_partition_list_destroy(topics)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            rd_kafka_queue_destroy(messageQueue)
            rd_kafka_queue_destroy(commitQueue)
            rd_kafka_queue_destroy(consumerQueue)
            throw KafkaError.fromCode(err, "subscribing to \(configuration.topics)")
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
    func nextDelivery() async throws -> Delivery? {
        enum Immediate { case delivery(Delivery?, wakeEngine: Bool), failure(KafkaError), wait }
        let immediate: Immediate = state.withLock { s in
            if let failure = s.failure { return .failure(failure) }
            if s.phase != .running { return .delivery(nil, wakeEngine: false) }
            guard !s.buffer.isEmpty else { return .wait }
            let (delivery, wakeEngine) = takeDelivery(&s)
            return .delivery(delivery, wakeEngine: wakeEngine)
        }
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
                        if s.phase != .running { return (.success(nil), false) }
                        if Task.isCancelled { return (.failure(CancellationError()), false) }
                        if !s.buffer.isEmpty {
                            let (delivery, wakeEngine) = takeDelivery(&s)
                            return (.success(delivery), wakeEngine)
                        }
                        precondition(s.waiter == nil, "a consumer engine serves one source at a time")
                        s.waiter = continuation
                        return nil
                    }
                    if let (result, wakeEngine) = resumeNow {
                        if wakeEngine { wakeup.signal() }
                        continuation.resume(with: result)
                    }
                }
            } onCancel: {
                let waiter = state.withLock { s in
                    defer { s.waiter = nil }
                    return s.waiter
                }
                waiter?.resume(throwing: CancellationError())
            }
        }
    }

    /// Takes the next batch out of the buffer (state lock held). `wakeEngine`
    /// is true when the take asks the engine thread to resume partitions.
    private func takeDelivery(_ s: inout State) -> (Delivery, wakeEngine: Bool) {
        let (taken, flow) = s.buffer.take(maxRecords: configuration.maxBatchSize)
        if flow != .none { s.pendingFlowControl.append(flow) }
        return (Delivery(chunks: taken, epoch: revocationEpoch.load(ordering: .acquiring)), flow != .none)
    }

    /// True if `partition` is still assigned (for sources re-checking after a revocation).
    func assignedPartitions() -> Set<TopicPartition> {
        state.withLock { $0.assigned }
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

    /// Completes the sources; the consumer stays in its group so that commits still land.
    func stop() {
        let waiter: UnsafeContinuation<Delivery?, any Error>? = state.withLock { s in
            guard s.phase == .running else { return nil }
            s.phase = .stopped
            s.buffer.removeAll()
            s.pendingFlowControl.append(.pauseAll)
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: nil)
        wakeup.signal()
    }

    /// Stops, leaves the group, and destroys the consumer. Returns when done.
    func shutdown() async {
        stop()
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let done: Bool = state.withLock { s in
                if s.phase == .closed { return true }
                s.phase = .closing
                s.closeWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() } else { wakeup.signal() }
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
        while true {
            wakeup.clear()
            if state.withLock({ $0.phase == .closing }) { break }
            applyFlowControl()
            serveCommitResults()
            sendCommits()
            drainConsumerQueue(scratch, capacity: scratchCapacity)
            applyFlowControl()
            housekeeping()
            if state.withLock({ $0.phase == .closing }) { break }
            wakeup.wait(timeoutMilliseconds: waitTimeout())
        }
        close(scratch, capacity: scratchCapacity)
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
        drain(consumerQueue, scratch, capacity: capacity) { true }
        // Records: only while the buffer has room. Left in librdkafka otherwise,
        // where its own byte limit (queued.max.messages.kbytes) bounds them.
        drain(messageQueue, scratch, capacity: capacity) {
            self.state.withLock { !$0.buffer.isPaused && $0.phase == .running }
        }
    }

    private func drain(
        _ queue: OpaquePointer, _ scratch: UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>, capacity: Int,
        while hasRoom: () -> Bool
    ) {
        while hasRoom() {
            let n = rd_kafka_consume_batch_queue(queue, 0, scratch, capacity)
            if n > 0 { ingest(scratch, count: n) }
            // A batch can end early (transaction markers) with more queued: only an empty queue ends the drain.
            if n <= 0 && rd_kafka_queue_length(queue) == 0 { return }
            if n < capacity && rd_kafka_queue_length(queue) == 0 { return }
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
            chunks.append(RecordChunk(batch: batch, range: runStart..<end, topicPartition: TopicPartition(topicName(rkt), key.1), byteCount: runBytes))
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
        guard !chunks.isEmpty else { return }
        unreachableSince = nil
        let waiter: (UnsafeContinuation<Delivery?, any Error>, Delivery)? = state.withLock { s in
            guard s.phase == .running else { return nil }
            for chunk in chunks where s.assigned.contains(chunk.topicPartition) {
                let flow = s.buffer.append(chunk)
                if flow != .none { s.pendingFlowControl.append(flow) }
            }
            guard let waiter = s.waiter, !s.buffer.isEmpty else { return nil }
            s.waiter = nil
            // On the engine thread itself: the loop applies any flow control right after.
            return (waiter, takeDelivery(&s).0)
        }
        if let (continuation, delivery) = waiter { continuation.resume(returning: delivery) }
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
            logger.warning("consumer error", metadata: ["topic": "\(topic)", "error": "\(reason)"])
        }
    }

    /// Fails the stream: the waiting source receives `error`, commits fail.
    func fail(_ error: KafkaError) {
        let (waiter, commitWaiters): (UnsafeContinuation<Delivery?, any Error>?, [UnsafeContinuation<Void, any Error>]) = state.withLock { s in
            guard s.failure == nil else { return (nil, []) }
            s.failure = error
            s.buffer.removeAll()
            let waiter = s.waiter
            s.waiter = nil
            let ids = s.commits.drainAll()
            let commitWaiters = ids.compactMap { s.commitWaiters.removeValue(forKey: $0) }
            return (waiter, commitWaiters)
        }
        logger.error("consumer failed", metadata: ["error": "\(error)"])
        waiter?.resume(throwing: error)
        for c in commitWaiters { c.resume(throwing: error) }
    }

    private func applyFlowControl() {
        let (actions, assigned) = state.withLock { s -> ([ConsumerBufferStateMachine<RecordChunk>.FlowControl], Set<TopicPartition>) in
            defer { s.pendingFlowControl.removeAll() }
            return (s.pendingFlowControl, s.assigned)
        }
        guard let last = actions.last, !assigned.isEmpty else { return }
        let stopped = state.withLock { $0.phase != .running }
        let list = PartitionList.make(assigned)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        // Only the net effect matters; a stopped consumer never resumes.
        if last == .pauseAll || stopped {
            rd_kafka_pause_partitions(handle, list)
        } else {
            rd_kafka_resume_partitions(handle, list)
        }
    }

    // MARK: Commits

    private func sendCommits() {
        let (send, skipped): (CommitStateMachine.Send?, [UnsafeContinuation<Void, any Error>]) = state.withLock { s in
            let (send, skippedIDs) = s.commits.nextSend(assigned: s.assigned)
            return (send, skippedIDs.compactMap { s.commitWaiters.removeValue(forKey: $0) })
        }
        // Offsets of partitions no longer assigned are not sent: the new owner reads from the last commit.
        for continuation in skipped { continuation.resume() }
        guard let send else { return }
        sendStarted[send.sendID] = .now
        let list = PartitionList.make(send.offsets)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_commit_queue(handle, list, commitQueue, nil, UnsafeMutableRawPointer(bitPattern: UInt(send.sendID)))
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            completeCommit(sendID: send.sendID, err: err, partitionErrors: [])
        }
    }

    private func serveCommitResults() {
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
        let resumptions: [(UnsafeContinuation<Void, any Error>, KafkaError?)] = state.withLock { s in
            switch s.commits.completed(sendID: sendID, error: error, retriable: retriable, now: now) {
            case .succeeded(let ids):
                return ids.compactMap { id in s.commitWaiters.removeValue(forKey: id).map { ($0, nil) } }
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

    static func isRetriableCommitError(_ err: rd_kafka_resp_err_t) -> Bool {
        switch err {
        case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
             RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
             RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__WAIT_COORD,
             RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
            return true
        default:
            return false
        }
    }

    private func housekeeping() {
        let now = ContinuousClock.now
        let expired: [(UnsafeContinuation<Void, any Error>, CommitStateMachine.Request)] = state.withLock { s in
            s.commits.expire(now: now).compactMap { r in s.commitWaiters.removeValue(forKey: r.id).map { ($0, r) } }
        }
        for (continuation, request) in expired {
            let partitions = request.offsets.keys.sorted().map(\.description).joined(separator: ", ")
            continuation.resume(throwing: KafkaError(
                .commitTimeout,
                "commit of \(partitions) not acknowledged within \(configuration.commitTimeout); the coordinator may be unreachable. Raise commitTimeout or check the cluster"))
        }
        checkReachability(now: now)
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

    fileprivate func onRebalance(_ err: rd_kafka_resp_err_t, _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) {
        let changed = Set(PartitionList.partitions(partitions))
        let cooperative = String(cString: rd_kafka_rebalance_protocol(handle)) == "COOPERATIVE"
        switch err {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            let flow = state.withLock { s -> ConsumerBufferStateMachine<RecordChunk>.FlowControl in
                if cooperative { s.assigned.formUnion(changed) } else { s.assigned = changed }
                return s.buffer.flowControlForNewAssignment()
            }
            if cooperative {
                if let error = rd_kafka_incremental_assign(handle, partitions) {
                    fail(KafkaError.consuming(error, "assigning partitions"))
                }
            } else {
                rd_kafka_assign(handle, partitions)
            }
            for partition in changed {
                if let partitionQueue = rd_kafka_queue_get_partition(handle, partition.topic, partition.partition) {
                    rd_kafka_queue_forward(partitionQueue, messageQueue)
                    rd_kafka_queue_destroy(partitionQueue)
                }
            }
            logger.debug("partitions assigned", metadata: ["partitions": "\(changed.sorted())"])
            let stopped = state.withLock { $0.phase != .running }
            if flow == .pauseAll || stopped { rd_kafka_pause_partitions(handle, partitions) }
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            let lost = rd_kafka_assignment_lost(handle) != 0
            state.withLock { s in
                let flow = s.buffer.remove(partitions: changed)
                if flow != .none { s.pendingFlowControl.append(flow) }
                s.assigned.subtract(changed)
                revocationEpoch.add(1, ordering: .releasing)
            }
            logger.debug(lost ? "partitions lost" : "partitions revoked", metadata: ["partitions": "\(changed.sorted())"])
            if cooperative {
                if let error = rd_kafka_incremental_unassign(handle, partitions) {
                    fail(KafkaError.consuming(error, "unassigning partitions"))
                }
            } else {
                rd_kafka_assign(handle, nil)
            }
        default:
            logger.warning("rebalance error", metadata: ["error": "\(String(cString: rd_kafka_err2str(err)))"])
            state.withLock { s in
                _ = s.buffer.remove(partitions: s.assigned)
                s.assigned.removeAll()
                revocationEpoch.add(1, ordering: .releasing)
            }
            rd_kafka_assign(handle, nil)
        }
    }

    fileprivate func onError(_ err: Int32, _ reason: String) {
        let code = rd_kafka_resp_err_t(err)
        if code == RD_KAFKA_RESP_ERR__FATAL {
            var buffer = [CChar](repeating: 0, count: 512)
            let original = rd_kafka_fatal_error(handle, &buffer, buffer.count)
            fail(KafkaError(.fatal, "librdkafka fatal error \(String(cString: rd_kafka_err2name(original))): \(String(cString: buffer))", code: Int32(original.rawValue)))
            return
        }
        if code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || code == RD_KAFKA_RESP_ERR__RESOLVE {
            if unreachableSince == nil { unreachableSince = .now }
        }
        logger.warning("kafka error", metadata: ["code": "\(String(cString: rd_kafka_err2name(code)))", "reason": "\(reason)"])
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
        let (commitWaiters, closeWaiters, waiter) = state.withLock { s in
            s.phase = .closed
            let ids = s.commits.drainAll()
            let commitWaiters = ids.compactMap { s.commitWaiters.removeValue(forKey: $0) }
            let closeWaiters = s.closeWaiters
            s.closeWaiters.removeAll()
            let waiter = s.waiter
            s.waiter = nil
            s.buffer.removeAll()
            return (commitWaiters, closeWaiters, waiter)
        }
        rd_kafka_queue_io_event_enable(consumerQueue, -1, nil, 0)
        rd_kafka_queue_io_event_enable(commitQueue, -1, nil, 0)
        rd_kafka_queue_io_event_enable(messageQueue, -1, nil, 0)
        rd_kafka_queue_destroy(messageQueue)
        rd_kafka_queue_destroy(commitQueue)
        rd_kafka_queue_destroy(consumerQueue)
        // Nothing polls the handle from here on, so no callback can reach the engine.
        callbackTarget.engine = nil
        clientOwner?.destroyFlags = closedCleanly ? 0 : Int32(RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE)
        clientOwner = nil
        waiter?.resume(returning: nil)
        for c in commitWaiters { c.resume(throwing: KafkaError(.shutDown, "the consumer closed before this commit was acknowledged")) }
        for c in closeWaiters { c.resume() }
    }
}

/// The opaque librdkafka passes to callbacks. It exists before the engine
/// (librdkafka needs it at creation) and refers back to it unowned: the engine
/// outlives the handle, which its own thread destroys. (Not `weak`: a weak
/// reference would give the engine a refcount side table and slow down every
/// retain of it, one per committable record.)
final class CallbackTarget: @unchecked Sendable {
    var engine: Unmanaged<ConsumerEngine>?
}

private func engine(_ opaque: UnsafeMutableRawPointer?) -> ConsumerEngine? {
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
