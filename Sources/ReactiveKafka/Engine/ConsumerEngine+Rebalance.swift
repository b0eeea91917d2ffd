import CRdKafka
import Foundation

/// Partition assignment: the rebalance callback, manual assignment, the
/// user's handler and observers, and rebalance-safe commits. All of it runs
/// on the engine thread.
extension ConsumerEngine {
    func onRebalance(_ err: rd_kafka_resp_err_t, _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) {
        let changed = Set(PartitionList.partitions(partitions))
        measuredRebalance(err, partitions: changed.count) { rebalance(err, partitions, changed) }
        checkHealth(now: .now)
    }

    private func rebalance(
        _ err: rd_kafka_resp_err_t, _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?,
        _ changed: Set<TopicPartition>
    ) {
        let cooperative = isCooperativeRebalance()
        // A rebalance callback comes after the member's SyncGroup: its generation is current again,
        // so commits held during a cooperative rejoin (and a revoke's own commits) may go out.
        let rejoinFollows = cooperativeRejoin == .afterRevoke
        cooperativeRejoin = .none
        // Taken before anything waiting for this callback resumes: offsets a transactional
        // producer sends for this member from now on carry this generation.
        let metadata = rd_kafka_consumer_group_metadata(handle).map(ConsumerGroupMetadata.init)
        groupRequests.rebalanceCallback(cooperative: cooperative, groupMetadata: metadata)
        switch err {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            if cooperative {
                if let error = rd_kafka_incremental_assign(handle, partitions) {
                    fail(KafkaError.consuming(error, "assigning partitions"))
                    return
                }
            } else {
                let err = rd_kafka_assign(handle, partitions)
                if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                    fail(KafkaError.fromCode(err, "assigning partitions"))
                    return
                }
            }
            began(changed, replacing: !cooperative)
            if cooperative && rejoinFollows && state.withLock({ $0.phase != .closing }) {
                // librdkafka rejoins as this callback returns: the kept partitions' commits wait
                // for the next callback (see cooperativeRejoin).
                cooperativeRejoin = .holding(since: .now)
            }
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            let lost = rd_kafka_assignment_lost(handle) != 0
            revoke(changed, lost: lost)
            if cooperative {
                if let error = rd_kafka_incremental_unassign(handle, partitions) {
                    fail(KafkaError.consuming(error, "unassigning partitions"))
                } else {
                    // The assign callback of this generation comes next, then librdkafka rejoins.
                    cooperativeRejoin = .afterRevoke
                }
            } else {
                rd_kafka_assign(handle, nil)
            }
        default:
            logger.warning("rebalance error", metadata: ["error": "\(String(cString: rd_kafka_err2str(err)))"])
            revoke(assignedPartitions(), lost: true)
            rd_kafka_assign(handle, nil)
        }
    }

    /// Whether this rebalance callback is of the cooperative protocol. librdkafka answers NULL
    /// when it cannot ask its group handler (which is terminating: a callback while the consumer
    /// closes); the protocol is the configured assignment strategy's for the member's whole life
    /// (cooperative-sticky is the only cooperative one), so that answers then.
    func isCooperativeRebalance() -> Bool {
        if let name = rd_kafka_rebalance_protocol(handle) { return String(cString: name) == "COOPERATIVE" }
        return Self.configuresCooperativeProtocol(configuration.properties["partition.assignment.strategy"])
    }

    /// Whether a `partition.assignment.strategy` value selects the cooperative protocol (librdkafka
    /// accepts only one protocol in the list; its default, `range,roundrobin`, is eager).
    static func configuresCooperativeProtocol(_ strategy: String?) -> Bool {
        strategy?.split(separator: ",").contains { $0.trimmingCharacters(in: .whitespaces) == "cooperative-sticky" }
            ?? false
    }

    /// Returns once no cooperative rejoin is under way (bounded by ``rejoinHoldLimit``): offsets
    /// another client sends for this member (a transactional producer) wait for its new generation.
    func waitWhileRejoining() async {
        await groupRequests.waitWhileRejoining(limit: rejoinHoldLimit)
    }

    /// Returns once a rebalance callback brought group metadata other than `refused` (bounded
    /// by ``commitHoldLimit``).
    func waitForGroupMetadata(replacing refused: ConsumerGroupMetadata) async {
        await groupRequests.waitForMetadata(replacing: refused, limit: commitHoldLimit)
    }

    /// How long a JoinGroup written holds commits (GroupRequestWatch): ``commitHoldLimit``, and not
    /// at all while the consumer closes (its last commits go out before it leaves the group).
    var rejoinHoldLimit: Duration {
        state.withLock { $0.phase == .closing } ? .zero : commitHoldLimit
    }

    /// Reads a manual assignment (`Subscription.assignment…`): no group, no rebalance.
    func assignManually() {
        guard configuration.subscription.kind != .external, !configuration.subscription.isGroupSubscription else {
            return
        }
        do throws(KafkaError) {
            let offsets = try startOffsets(configuration.subscription)
            let list = PartitionList.make(offsets: offsets)
            defer { rd_kafka_topic_partition_list_destroy(list) }
            let err = rd_kafka_assign(handle, list)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw KafkaError.fromCode(err, "assigning \(configuration.subscription)")
            }
            began(Set(offsets.keys), replacing: true)
        } catch {
            fail(error)
        }
    }

    /// Where each partition of a manual assignment starts (`INVALID`: the committed offset).
    func startOffsets(_ subscription: Subscription) throws(KafkaError) -> [TopicPartition: Int64] {
        switch subscription.kind {
        case .assignment(let partitions):
            return Dictionary(uniqueKeysWithValues: partitions.map { ($0, Int64(RD_KAFKA_OFFSET_INVALID)) })
        case .assignmentWithOffset(let given):
            return given
        case .assignmentOffsetsForTimes(let timestamps):
            do {
                let found = try restrictedConsumer.offsetsForTimes(timestamps)
                // No record at or after the time: start at the end, as Kafka's consumer does.
                return Dictionary(
                    uniqueKeysWithValues: timestamps.keys.map { ($0, found[$0] ?? Int64(RD_KAFKA_OFFSET_END)) })
            } catch {
                throw KafkaError(
                    error.kind, "looking up the offsets for \(subscription): \(error.message)", code: error.code)
            }
        case .topics, .pattern, .external:
            return [:]
        }
    }

    /// Ended shared-consumer sources whose emitted offsets are all gone (and their commits
    /// answered), or whose deadline passed, let their partitions go (engine thread).
    func detachReleasedSubsets(now: ContinuousClock.Instant) {
        let holders = subsetOffsetHolders.withLock { $0 }
        let due = state.withLock { s in
            s.subsets.detachWhenReleased.compactMap { id, deadline -> UInt64? in
                let partitions = s.subsets.partitions[id] ?? []
                let released = holders[id] == nil && !s.commits.machine.hasWork(touching: partitions)
                return released || now >= deadline ? id : nil
            }
        }
        for id in due { detach(id) }
    }

    /// A source sharing this consumer adds its partitions (engine thread).
    func attach(_ id: UInt64, _ subscription: Subscription) throws(KafkaError) {
        let partitions = subscription.manualPartitions
        // An ended source still holding them for its committers gives them up now: the new
        // source reads them again from the last commit.
        for ended in state.withLock({ $0.subsets.pendingDetaches(holding: partitions) }) { detach(ended) }
        let taken = state.withLock { s in s.subsets.attached.intersection(partitions) }
        try check(
            taken.isEmpty,
            "\(taken.sorted().map(\.description).joined(separator: ", ")) already read by another source of this consumer: give each source its own partitions"
        )
        let offsets = try startOffsets(subscription)
        let list = PartitionList.make(offsets: offsets)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        if let error = rd_kafka_incremental_assign(handle, list) {
            throw KafkaError.consuming(error, "assigning \(subscription)")
        }
        state.withLock { $0.subsets.attach(id, partitions) }
        began(partitions, replacing: false)
    }

    /// A source sharing this consumer completes; its partitions stay assigned so its commits still
    /// land, until its `detach`, or (with `deadline`) once nothing it emitted can be committed any
    /// more, `deadline` at the latest (``detachReleasedSubsets(now:)``).
    func stopSubset(_ id: UInt64, detachingBy deadline: ContinuousClock.Instant? = nil) {
        let waiter = state.withLock { s in
            if let deadline { s.subsets.stopThenDetach(id, deadline: deadline) } else { s.subsets.stop(id) }
            return s.waiters.removeValue(forKey: .subset(id))
        }
        waiter?.resume(returning: nil)
    }

    /// Whether the source `id` sharing this consumer completed.
    func isStopped(_ id: UInt64) -> Bool { state.withLock { $0.subsets.isStopped(id) } }

    /// A source sharing this consumer lets its partitions go and completes (engine thread).
    func detach(_ id: UInt64) {
        let (partitions, waiter) = state.withLock {
            s -> (Set<TopicPartition>, UnsafeContinuation<Delivery?, any Error>?) in
            let partitions = s.subsets.detach(id)
            withdraw(partitions, &s)
            return (partitions, s.waiters.removeValue(forKey: .subset(id)))
        }
        waiter?.resume(returning: nil)
        guard !partitions.isEmpty else { return }
        let list = PartitionList.make(partitions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        if let error = rd_kafka_incremental_unassign(handle, list) {
            logger.warning(
                "unassigning a detached source's partitions",
                metadata: ["error": "\(KafkaError.consuming(error, "unassign"))"])
        }
    }

    /// `partitions` are now assigned in librdkafka: route their records, tell the
    /// handler (before any record of them is emitted), observers and partitioned sources.
    func began(_ partitions: Set<TopicPartition>, replacing: Bool) {
        joinedOnce = true
        for partition in partitions { partitionQueues.forward(partition, of: handle, to: messageQueue) }
        if let handler = configuration.subscription.partitionAssignmentHandler {
            timed("onAssign", partitions) { handler.onAssign(partitions, consumer: restrictedConsumer) }
        }
        if configuration.offsetResetProtection != nil { learnCommittedOffsets(partitions) }
        let announcement: (UnsafeContinuation<[Announcement]?, any Error>, [Announcement])? = state.withLock { s in
            if replacing { s.assigned = partitions } else { s.assigned.formUnion(partitions) }
            s.pendingFlowControl.append(.partitionsChanged)
            sharePartitionBudget(&s)
            guard configuration.partitioned else { return nil }
            let epoch = revocationEpoch.load(ordering: .acquiring)
            return s.announcements.announce(partitions.sorted().map { Announcement(partition: $0, epoch: epoch) })
        }
        // New partitions start unpaused in librdkafka: pause them now if over budget.
        applyFlowControl(force: true)
        logger.debug("partitions assigned", metadata: ["partitions": "\(partitions.sorted())"])
        configuration.events?.emit(.assigned(partitions))
        if let (waiter, announced) = announcement { waiter.resume(returning: announced) }
    }

    /// Takes `partitions` from the sources (state lock held): buffered records
    /// dropped, records handed out but not yet emitted made unemittable.
    private func withdraw(_ partitions: Set<TopicPartition>, _ s: inout State) {
        s.assigned.subtract(partitions)
        forgetSeeks(of: partitions)
        sharePartitionBudget(&s)
        invalidate(partitions, &s)
    }

    /// With per-partition readers, each assigned partition may hold an equal
    /// share of the buffer before it is paused on its own.
    func sharePartitionBudget(_ s: inout State) {
        guard configuration.partitioned else { return }
        s.buffer.perPartitionBudget = max(1, s.buffer.pauseThreshold / max(1, s.assigned.count))
    }

    /// Takes `partitions` away from the sources before librdkafka unassigns
    /// them: their records are dropped, and (graceful revoke, rebalance-safe
    /// commits) the records already emitted are committed first.
    private func revoke(_ partitions: Set<TopicPartition>, lost: Bool) {
        guard !partitions.isEmpty else { return }
        // What was emitted before the revoke is stored while the partitions are still ours, so
        // librdkafka's commit on revoke covers it (a lost partition's commit is refused anyway).
        if !lost { storeEmittedOffsets() }
        let waitForCommits = !lost && configuration.rebalanceSafeCommitTimeout != nil
        let finishedSubStreams: [UnsafeContinuation<Delivery?, any Error>] = state.withLock { s in
            withdraw(partitions, &s)
            // Also while stopped (a drain): the consumer stays in the group so that what its
            // stream emitted can be committed, and a rebalance then must not hand it on first.
            if waitForCommits && !s.lifecycle.isEnding { s.emitted.beginRevoke(partitions) }
            return partitions.compactMap { s.waiters.removeValue(forKey: .partition($0)) }
        }
        for waiter in finishedSubStreams { waiter.resume(returning: nil) }
        if waitForCommits { awaitCommitsOfEmittedRecords(partitions) }
        state.withLock { s in
            s.emitted.endRevoke(partitions)
            for p in partitions { s.handedOutPositions[p] = nil }
            for p in partitions {
                newestTimestamp[p] = nil
                resetBase[p] = nil
                nextOffsets[p] = nil
                resumedUnchecked.remove(p)
            }
        }
        if let handler = configuration.subscription.partitionAssignmentHandler {
            if lost {
                timed("onLost", partitions) { handler.onLost(partitions, consumer: restrictedConsumer) }
            } else {
                timed("onRevoke", partitions) { handler.onRevoke(partitions, consumer: restrictedConsumer) }
            }
        }
        // Also those the handler asked for just now: they are going.
        forgetSeeks(of: partitions)
        logger.debug(
            lost ? "partitions lost" : "partitions revoked", metadata: ["partitions": "\(partitions.sorted())"])
        configuration.events?.emit(lost ? .lost(partitions) : .revoked(partitions))
    }

    /// Rebalance-safe commits: waits, at most `rebalanceSafeCommitTimeout`,
    /// until every record emitted for `partitions` is committed. Sources see
    /// the revoke at once (nothing more is emitted), committers are asked to
    /// commit what they hold now, and commits keep flowing while we wait.
    private func awaitCommitsOfEmittedRecords(_ partitions: Set<TopicPartition>) {
        guard let timeout = configuration.rebalanceSafeCommitTimeout,
            state.withLock({ !$0.lifecycle.isEnding && $0.emitted.isRevoking })
        else { return }
        let started = ContinuousClock.now
        let deadline = started + timeout
        commitsRefusedByRebalance = false
        awaitingRevokeCommits.store(true, ordering: .releasing)
        defer { awaitingRevokeCommits.store(false, ordering: .releasing) }
        for flush in state.withLock({ Array($0.commits.observers.values) }) { flush() }
        while true {
            wakeup.clear()
            serveCommands()
            serveCommitResults()
            sendCommits()
            let outstanding = uncommittedEmittedPartitions(partitions)
            if outstanding.isEmpty {
                logger.debug(
                    "revoked partitions' emitted records are committed",
                    metadata: ["waited": "\(ContinuousClock.now - started)"])
                return
            }
            if commitsRefusedByRebalance {
                // A coordinator that refuses commits until this member rejoins (a Kafka broker
                // accepts them while preparing an eager rebalance; librdkafka's mock cluster does
                // not): waiting longer would only hold up the group.
                logger.warning(
                    "the group coordinator refuses commits during this rebalance: revoked partitions' last records may be processed again by their next owner",
                    metadata: ["partitions": "\(outstanding.sorted())"])
                return
            }
            let now = ContinuousClock.now
            if now >= deadline || state.withLock({ $0.lifecycle.isEnding || $0.failure != nil }) {
                logger.warning(
                    "revoking partitions before the records emitted for them were committed: they may be processed again by their next owner",
                    metadata: ["partitions": "\(outstanding.sorted())", "rebalanceSafeCommitTimeout": "\(timeout)"])
                return
            }
            wakeup.wait(timeoutMilliseconds: Int32(clamping: min(100, max(1, (deadline - now).milliseconds))))
        }
    }

    /// Revoked partitions whose emitted records are not all committed yet, or
    /// whose reader has not yet said how far it emitted.
    private func uncommittedEmittedPartitions(_ partitions: Set<TopicPartition>) -> Set<TopicPartition> {
        state.withLock { s in s.emitted.uncommitted(among: partitions) }
    }

    /// Runs a handler call, warning when it holds up the rebalance too long.
    private func timed(_ name: String, _ partitions: Set<TopicPartition>, _ call: () -> Void) {
        let started = ContinuousClock.now
        call()
        let took = ContinuousClock.now - started
        if took > configuration.partitionHandlerWarning {
            logger.warning(
                "partition assignment handler \(name) took \(took): it blocks the consumer and the group's rebalance; keep it short",
                metadata: [
                    "partitions": "\(partitions.sorted())",
                    "partitionHandlerWarning": "\(configuration.partitionHandlerWarning)",
                ])
        }
    }

    /// The handler's `onStop`, before the consumer leaves its group.
    func stopHandler() {
        guard let handler = configuration.subscription.partitionAssignmentHandler else { return }
        let partitions = assignedPartitions()
        timed("onStop", partitions) { handler.onStop(partitions, consumer: restrictedConsumer) }
    }
}
