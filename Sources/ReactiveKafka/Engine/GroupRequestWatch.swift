import CRdKafka
import Synchronization

/// When a consumer's commits may go out without racing a rejoin of its group (librdkafka 2.0.x).
///
/// The group coordinator serves a connection's requests in order, and JoinGroup is answered only
/// once every member rejoined, so an OffsetCommit written after a JoinGroup on the coordinator
/// connection is answered after the join completed, with the old generation: ILLEGAL_GENERATION.
/// librdkafka before 2.10 (#4059) answers that by setting its generation to -1, so that its SyncGroup
/// fails and its whole assignment is declared lost: the partitions a cooperative member keeps are
/// revoked without commits and assigned again from their last committed offsets (records emitted
/// twice by the same member, and read again by the next owner of those that move). A cooperative
/// member rejoins without a rebalance callback whenever a heartbeat answers that the group is
/// rebalancing, so the engine cannot tell from its callbacks alone when that window opens.
///
/// librdkafka's interceptors tell it: this watch hears, on librdkafka's broker threads, when a
/// JoinGroup request was written and when a heartbeat was answered. The engine sends its commits
/// through ``send(_:)``, which holds them
/// - from a JoinGroup written until the member's next rebalance callback (the join and its
///   SyncGroup are done then, and the generation current again), for a cooperative member, and
/// - for ``heartbeatSettle`` after each heartbeat answer to a cooperative member (an eager one
///   revokes, and commits, in a callback before it rejoins), unless a JoinGroup was written since: the
///   answer is handed to librdkafka's main thread only after the interceptor returns, and a commit
///   queued to that thread after it could be sent behind the JoinGroup the answer starts. A commit
///   queued before the answer is served first and written before any JoinGroup the answer starts,
///   so the engine's check and its commit are made under the lock the interceptor takes.
///
/// What stays open: a main thread that takes longer than ``heartbeatSettle`` to serve the answer.
final class GroupRequestWatch: Sendable {
    /// Kafka protocol request types (ApiKey).
    static let offsetCommit: Int16 = 8
    static let joinGroup: Int16 = 11
    static let heartbeat: Int16 = 12

    /// How long commits wait after a heartbeat answer for the rejoin it may start.
    static let heartbeatSettle: Duration = .milliseconds(50)

    struct State {
        /// When a JoinGroup was written since the member's last rebalance callback.
        var joinWrittenAt: ContinuousClock.Instant?
        /// Whether that JoinGroup still awaits its answer.
        var joinInFlight = false
        /// When the last heartbeat was answered, unless a JoinGroup was written since.
        var heartbeatAnsweredAt: ContinuousClock.Instant?
        /// Whether the member's last rebalance callback was of the cooperative protocol.
        var cooperative = false
        /// OffsetCommits written while a JoinGroup awaited its answer (each answered ILLEGAL_GENERATION).
        var commitsBehindJoin = 0
        /// The member's group metadata as of its last rebalance callback.
        var groupMetadata: ConsumerGroupMetadata?
        /// Tasks waiting for the next rebalance callback, by ticket.
        var rebalanceWaiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextTicket: UInt64 = 0
    }

    let state = Mutex(State())

    /// Registers the interceptors on `conf`, for the client created from it.
    func install(on conf: OpaquePointer) {
        // Unretained: the engine's CallbackTarget holds this watch, and the handle's owner keeps
        // the target alive until the handle (and its broker threads) are destroyed.
        let opaque = Unmanaged.passUnretained(self).toOpaque()
        rd_kafka_conf_interceptor_add_on_new(conf, "reactive-kafka-group-requests", groupRequestWatchOnNew, opaque)
    }

    /// Whether commits must wait now (lock held).
    private static func holds(_ s: State, now: ContinuousClock.Instant, limit: Duration) -> Bool {
        // Cooperative members only: an eager member revoked (and committed) everything in its
        // callback before it rejoins, so it has nothing to commit behind the JoinGroup; holding
        // its commits only made those queued just before time out behind a slow join.
        if s.cooperative, let written = s.joinWrittenAt, now - written < limit { return true }
        if s.cooperative, let answered = s.heartbeatAnsweredAt, now - answered < heartbeatSettle { return true }
        return false
    }

    /// Runs `send` (which queues a commit with librdkafka) unless a rejoin may be under way; returns
    /// whether it ran. A JoinGroup written longer than `limit` ago no longer holds commits, so that a
    /// rejoin held up (by a crashed member's session, say) lets them out before they time out.
    func send(limit: Duration, now: ContinuousClock.Instant = .now, _ send: () -> Void) -> Bool {
        state.withLock { s in
            guard !Self.holds(s, now: now, limit: limit) else { return false }
            send()
            return true
        }
    }

    /// The member's rebalance callback runs: its join and SyncGroup are complete, and
    /// `groupMetadata` is its membership now (generation and member id).
    func rebalanceCallback(cooperative: Bool, groupMetadata: ConsumerGroupMetadata? = nil) {
        state.withLock { s in
            s.cooperative = cooperative
            s.joinWrittenAt = nil
            s.heartbeatAnsweredAt = nil
            if let groupMetadata { s.groupMetadata = groupMetadata }
        }
        releaseWaiters()
    }

    /// The member's group metadata as of its last rebalance callback: what offsets another
    /// client sends for it (a transactional producer's TxnOffsetCommit, KIP-447) must carry.
    var groupMetadata: ConsumerGroupMetadata? { state.withLock { $0.groupMetadata } }

    /// Returns once a cooperative member's rejoin (from its JoinGroup written to its next
    /// rebalance callback) is over, or at once when none is under way; waits at most until
    /// `limit` after the JoinGroup was written, and returns early when the task is cancelled.
    ///
    /// For offsets another client sends for this member: they carry the member's generation,
    /// which the rejoin replaces when it completes and the member learns only in its callback;
    /// sent in between, they are refused with ILLEGAL_GENERATION, and the transaction holding
    /// them must abort.
    func waitWhileRejoining(limit: Duration) async {
        let deadline = state.withLock { s -> ContinuousClock.Instant? in
            guard s.cooperative, let written = s.joinWrittenAt else { return nil }
            return written + limit
        }
        guard let deadline else { return }
        await nextRebalanceCallback(until: deadline) { s in s.cooperative && s.joinWrittenAt != nil }
    }

    /// Returns once a rebalance callback brought metadata other than `refused` (a new generation
    /// or member id), waiting at most `limit`: offsets the coordinator refused for their
    /// generation are worth sending again only with the next one.
    func waitForMetadata(replacing refused: ConsumerGroupMetadata, limit: Duration) async {
        await nextRebalanceCallback(until: .now + limit) { s in s.groupMetadata === refused }
    }

    /// Suspends while `waiting` holds, until the next rebalance callback, `deadline`, ``releaseWaiters()``
    /// or cancellation.
    private func nextRebalanceCallback(
        until deadline: ContinuousClock.Instant, while waiting: @escaping @Sendable (State) -> Bool
    ) async {
        let ticket = state.withLock { s -> UInt64? in
            guard waiting(s) else { return nil }
            defer { s.nextTicket &+= 1 }
            return s.nextTicket
        }
        guard let ticket else { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(until: deadline) }
            group.addTask {
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
                        let resumeNow = self.state.withLock { s -> Bool in
                            if Task.isCancelled || !waiting(s) { return true }
                            s.rebalanceWaiters[ticket] = waiter
                            return false
                        }
                        if resumeNow { waiter.resume() }
                    }
                } onCancel: {
                    self.state.withLock { $0.rebalanceWaiters.removeValue(forKey: ticket) }?.resume()
                }
            }
            await group.next()
            group.cancelAll()
        }
    }

    /// Lets every task waiting for a rebalance callback go (it came, or the consumer closes).
    func releaseWaiters() {
        let waiters = state.withLock { s in
            defer { s.rebalanceWaiters.removeAll() }
            return Array(s.rebalanceWaiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Whether a JoinGroup was written since the member's last rebalance callback: the group rebalances.
    var isRejoining: Bool { state.withLock { $0.joinWrittenAt != nil } }

    /// Commits written behind a pending JoinGroup so far (for tests and diagnostics).
    var commitsBehindJoin: Int { state.withLock { $0.commitsBehindJoin } }

    /// A request of type `apiKey` was written to a broker (a broker thread).
    func requestWritten(_ apiKey: Int16, at now: ContinuousClock.Instant = .now) {
        switch apiKey {
        case Self.joinGroup:
            state.withLock { s in
                s.joinWrittenAt = now
                s.joinInFlight = true
                s.heartbeatAnsweredAt = nil
            }
        case Self.offsetCommit:
            state.withLock { s in if s.joinInFlight { s.commitsBehindJoin += 1 } }
        default:
            break
        }
    }

    /// A response to a request of type `apiKey` arrived, before librdkafka reads it (a broker thread).
    func responseReceived(_ apiKey: Int16, at now: ContinuousClock.Instant = .now) {
        switch apiKey {
        case Self.joinGroup:
            state.withLock { $0.joinInFlight = false }
        case Self.heartbeat:
            state.withLock { s in
                // Taken before librdkafka queues the answer to its main thread (see above).
                if s.joinWrittenAt == nil { s.heartbeatAnsweredAt = now }
            }
        default:
            break
        }
    }
}

private func watch(_ opaque: UnsafeMutableRawPointer?) -> GroupRequestWatch? {
    opaque.map { Unmanaged<GroupRequestWatch>.fromOpaque($0).takeUnretainedValue() }
}

private let groupRequestWatchOnNew:
    @convention(c) (
        OpaquePointer?, OpaquePointer?, UnsafeMutableRawPointer?, UnsafeMutablePointer<CChar>?, Int
    ) -> rd_kafka_resp_err_t = { rk, _, opaque, _, _ in
        rd_kafka_interceptor_add_on_request_sent(
            rk, "reactive-kafka-group-requests", groupRequestWatchRequestSent, opaque)
        rd_kafka_interceptor_add_on_response_received(
            rk, "reactive-kafka-group-requests", groupRequestWatchResponseReceived, opaque)
        return RD_KAFKA_RESP_ERR_NO_ERROR
    }

private let groupRequestWatchRequestSent:
    @convention(c) (
        OpaquePointer?, Int32, UnsafePointer<CChar>?, Int32, Int16, Int16, Int32, Int, UnsafeMutableRawPointer?
    ) -> rd_kafka_resp_err_t = { _, _, _, _, apiKey, _, _, _, opaque in
        watch(opaque)?.requestWritten(apiKey)
        return RD_KAFKA_RESP_ERR_NO_ERROR
    }

private let groupRequestWatchResponseReceived:
    @convention(c) (
        OpaquePointer?, Int32, UnsafePointer<CChar>?, Int32, Int16, Int16, Int32, Int, Int64, rd_kafka_resp_err_t,
        UnsafeMutableRawPointer?
    ) -> rd_kafka_resp_err_t = { _, _, _, _, apiKey, _, _, _, _, _, opaque in
        watch(opaque)?.responseReceived(apiKey)
        return RD_KAFKA_RESP_ERR_NO_ERROR
    }
