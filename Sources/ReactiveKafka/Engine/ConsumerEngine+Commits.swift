import CRdKafka
import Foundation
import Synchronization

/// Commits: requests from sources and committers (any task), and their sending,
/// answers, deadlines and emitted-offset storing (engine thread).
extension ConsumerEngine {
    /// Registers a committer to be asked for an immediate commit while a revoke waits for it.
    /// The committer holds the consumer open until it detaches (``removeCommitRequestObserver(_:)``),
    /// so what it flushes after its upstream ended still lands.
    func addCommitRequestObserver(_ id: ObjectIdentifier, _ flush: @escaping @Sendable () -> Void) {
        state.withLock { s in
            s.commits.observers[id] = flush
            s.lifecycle.committerAttached(id)
        }
    }

    /// A counted chunk partition is gone (any thread, from its deinit; the state lock may be held
    /// there): the last one tells the engine thread, which tells the lifecycle.
    func emittedOffsetHolderReleased(subset: UInt64) {
        if subset != 0 {
            // A shared-consumer source's: the last one may let its ended source detach.
            let last = subsetOffsetHolders.withLock { holders in
                let left = (holders[subset] ?? 1) - 1
                holders[subset] = left > 0 ? left : nil
                return left <= 0
            }
            if last { wakeup.signal() }
            return
        }
        if emittedOffsetHolders.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
            emittedOffsetHoldersDrained.store(true, ordering: .releasing)
            wakeup.signal()
        }
    }

    /// Whether offsets of emitted records may still be committed downstream.
    var emittedOffsetsOutstanding: Bool { emittedOffsetHolders.load(ordering: .acquiring) > 0 }

    var requestsImmediateCommit: Bool { awaitingRevokeCommits.load(ordering: .relaxed) }

    /// A committer has flushed: if it was the last thing holding an ended stream's consumer, the consumer closes.
    func removeCommitRequestObserver(_ id: ObjectIdentifier) {
        let waiters = state.withLock { s in
            s.commits.observers.removeValue(forKey: id)
            return perform(s.lifecycle.committerDetached(id, offsetsOutstanding: emittedOffsetsOutstanding), &s)
        }
        finish(waiters)
    }

    func commit(_ offsets: [TopicPartition: CommitPosition]) async throws(KafkaError) {
        guard !offsets.isEmpty else { return }
        // Set under the state lock when the request is queued; read by the cancellation handler.
        let queuedID = Atomic<UInt64>(0)
        do {
            try await withTaskCancellationHandler {
                try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
                    let now = ContinuousClock.now
                    let failure: KafkaError? = state.withLock { s in
                        if let failure = s.failure { return failure }
                        if s.lifecycle.isEnding {
                            return KafkaError(
                                .shutDown,
                                "cannot commit \(offsets.count) offset(s): the consumer was shut down; commit before shutdown (drainAndShutdown does)"
                            )
                        }
                        if Task.isCancelled { return .cancelledWhileWaiting }
                        queuedID.store(
                            s.commits.enqueue(
                                offsets, deadline: now + configuration.commitTimeout, started: now, waiter: continuation
                            ), ordering: .relaxed)
                        return nil
                    }
                    if let failure { continuation.resume(throwing: failure) } else { wakeup.signal() }
                }
            } onCancel: {
                // The caller stops waiting (a commit refused until its timeout would hold it that
                // long): it is told `.cancelled`, never success. The request itself stays queued
                // and may still land, as any commit already sent may.
                let waiter = state.withLock { s -> PendingCommits.Waiter? in
                    let id = queuedID.load(ordering: .relaxed)
                    return id == 0 ? nil : s.commits.takeWaiter(id)
                }
                waiter?.resume(throwing: KafkaError.cancelledWhileWaiting)
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
            guard s.failure == nil, !s.lifecycle.isEnding else { return }
            s.commits.enqueue(offsets, deadline: now + configuration.commitTimeout, started: now, waiter: nil)
        }
        wakeup.signal()
    }

    /// Hands librdkafka the offsets of records the sources emitted, for its auto-commit
    /// (``Configuration/storesEmittedOffsets``; engine thread). Partitions no longer assigned are
    /// left alone: their next owner reads from the last commit.
    func storeEmittedOffsets() {
        guard configuration.storesEmittedOffsets else { return }
        let offsets: [TopicPartition: Int64] = state.withLock { s in
            s.emitted.takeOffsetsToStore(assigned: s.assigned)
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
            guard ContinuousClock.now - since >= commitHoldLimit || state.withLock({ $0.phase == .closing }) else {
                return
            }
            cooperativeRejoin = .none
        }
        // Not while the group may be rejoining: the check and the send are one step (see GroupRequestWatch).
        _ = groupRequests.send(limit: rejoinHoldLimit) { sendCommitsNow() }
    }

    private func sendCommitsNow() {
        let (send, refused): (CommitStateMachine.Send?, [(UnsafeContinuation<Void, any Error>, Set<TopicPartition>)]) =
            state.withLock { s in
                let (send, notAssigned) = s.commits.machine.nextSend(
                    assigned: s.emitted.committable(assigned: s.assigned))
                return (
                    send, notAssigned.compactMap { id, partitions in s.commits.takeWaiter(id).map { ($0, partitions) } }
                )
            }
        // Offsets of partitions no longer assigned are not sent (the new owner reads from the
        // last commit), and their committers are told so: never a success that did not happen.
        for (continuation, partitions) in refused { continuation.resume(throwing: KafkaError.notAssigned(partitions)) }
        guard let send else { return }
        sendStarted[send.sendID] = .now
        sentOffsets[send.sendID] = send.offsets.mapValues(\.nextOffset)
        let list = PartitionList.make(send.offsets)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_commit_queue(
            handle, list, commitQueue, nil, UnsafeMutableRawPointer(bitPattern: UInt(send.sendID)))
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

    private func completeCommit(
        sendID: UInt64, err: rd_kafka_resp_err_t, partitionErrors: [(TopicPartition, rd_kafka_resp_err_t)]
    ) {
        let effective =
            err != RD_KAFKA_RESP_ERR_NO_ERROR ? err : (partitionErrors.first?.1 ?? RD_KAFKA_RESP_ERR_NO_ERROR)
        var error: KafkaError? = nil
        if effective == RD_KAFKA_RESP_ERR__NO_OFFSET {
            error = nil // nothing new to commit: the broker already has these offsets
        } else if effective != RD_KAFKA_RESP_ERR_NO_ERROR {
            let which = partitionErrors.map { "\($0.0)" }.joined(separator: ", ")
            let refusal = KafkaError.fromCode(
                effective, "committing offsets\(which.isEmpty ? "" : " of \(which)")", kind: .commitFailed)
            // A refusal names its partitions (those refused, else every partition sent), as the
            // expiry of a refused commit does: a caller learns which offsets were not committed.
            let refused = Set(partitionErrors.filter { $0.1 != RD_KAFKA_RESP_ERR_NO_ERROR }.map(\.0))
            error = KafkaError(
                refusal.kind, refusal.message, code: refusal.code,
                partitions: refused.isEmpty ? Set(sentOffsets[sendID].map { Array($0.keys) } ?? []) : refused)
        }
        let now = ContinuousClock.now
        let started = sendStarted.removeValue(forKey: sendID)
        if let started, now - started > configuration.commitTimeWarning {
            logger.warning(
                "slow commit",
                metadata: ["duration": "\(now - started)", "threshold": "\(configuration.commitTimeWarning)"])
        }
        let retriable = Self.isRetriableCommitError(effective)
        instruments?.commitAnswered(
            outcome: error == nil ? "success" : retriable ? "retry" : "failure", after: started.map { now - $0 })
        let refusedByRebalance = Self.isRebalanceCommitError(effective)
        if refusedByRebalance { commitsRefusedByRebalance = true }
        let sent = sentOffsets.removeValue(forKey: sendID)
        if let offsets = sent, error == nil {
            state.withLock { s in
                s.emitted.committed(offsets)
            }
            if configuration.offsetResetProtection != nil {
                for (p, next) in offsets { resetBase[p] = max(resetBase[p] ?? -1, next) }
            }
        }
        let resumptions: [(UnsafeContinuation<Void, any Error>, KafkaError?)] = state.withLock { s in
            switch s.commits.machine.completed(sendID: sendID, error: error, retriable: retriable, now: now) {
            case .succeeded(let ids, let notAssigned):
                return ids.compactMap { id in
                    s.commits.takeWaiter(id).map { ($0, notAssigned[id].map { KafkaError.notAssigned($0) }) }
                }
            case .failed(let ids, let e):
                return ids.compactMap { id in s.commits.takeWaiter(id).map { ($0, e) } }
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
        err == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS || err == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION
            || err == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID
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
}
