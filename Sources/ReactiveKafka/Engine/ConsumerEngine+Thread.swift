import CRdKafka
import Foundation
import Synchronization

/// The engine thread's loop: fetching into the buffer, flow control, and housekeeping.
extension ConsumerEngine {
    func run() {
        let scratchCapacity = configuration.maxBatchSize
        let scratch = UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>.allocate(
            capacity: scratchCapacity)
        defer { scratch.deallocate() }
        if !configuration.subscription.isGroupSubscription { assignManually() }
        while true {
            wakeup.clear()
            if state.withLock({ $0.phase == .closing }) { break }
            collectReleasedBatches()
            serveCommands()
            applyFlowControl()
            serveCommitResults()
            sendCommits()
            storeEmittedOffsets()
            drainConsumerQueue(scratch, capacity: scratchCapacity)
            applyFlowControl()
            housekeeping()
            if state.withLock({ $0.phase == .closing }) { break }
            // From here a released batch wakes this thread only while fetching is paused for the
            // budget; one released before is collected now (both sides sequentially consistent).
            heldBatchReleases.engineWaits.store(
                state.withLock { $0.buffer.isPaused }, ordering: .sequentiallyConsistent)
            if collectReleasedBatches() { continue }
            wakeup.wait(timeoutMilliseconds: waitTimeout())
        }
        close(scratch, capacity: scratchCapacity)
        // They refer to this engine (their committer): the engine's part of that cycle ends with its thread.
        consumedPartitions.removeAll()
    }

    /// Batches the application let go of since the last look: their bytes leave the budget, which
    /// may resume fetching. True when that changed what is paused.
    @discardableResult
    private func collectReleasedBatches() -> Bool {
        let bytes = heldBatchReleases.takeReleased()
        guard bytes > 0 else { return false }
        return state.withLock { s in
            let flow = s.buffer.released(bytes: bytes)
            if flow != .none { s.pendingFlowControl.append(flow) }
            return flow != .none
        }
    }

    private func waitTimeout() -> Int32 {
        // A bounded wait keeps commit deadlines and reachability checks timely
        // and satisfies librdkafka's max.poll.interval.ms; data and commands wake us at once.
        var timeout: Int32 = 250
        if let deadline = state.withLock({ $0.commits.machine.earliestDeadline }) {
            let remaining = (deadline - .now).milliseconds
            timeout = min(timeout, max(1, remaining))
        }
        return timeout
    }

    private func drainConsumerQueue(
        _ scratch: UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>, capacity: Int
    ) {
        // Callbacks, errors, and records fetched before their partition's queue was forwarded.
        drain(consumerQueue, scratch, capacity: capacity) { capacity }
        // Records: only while the buffer has room, and no more than fit. Left in librdkafka
        // otherwise, where its own byte limit (queued.max.messages.kbytes) bounds them.
        drain(messageQueue, scratch, capacity: capacity) {
            let room = self.state.withLock { s in
                s.buffer.isPaused || s.phase != .running ? 0 : s.buffer.room
            }
            guard room > 0 else { return 0 }
            return min(capacity, max(1, room / max(1, self.recentRecordBytes)))
        }
    }

    private func drain(
        _ queue: OpaquePointer, _ scratch: UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>,
        capacity: Int,
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
        let batch = MessageBatch(copying: scratch, count: count, client: clientOwner!, releases: heldBatchReleases)
        var chunks: [RecordChunk] = []
        var runStart = 0
        var runBytes = 0
        var runKey: (OpaquePointer?, Int32)? = nil
        var partitionEnds: [(TopicPartition, Int64)] = []
        func closeRun(at end: Int) {
            guard let key = runKey, end > runStart, let rkt = key.0 else { return }
            let partition = consumedPartition(rkt, key.1)
            batch.setTopic(partition.topicPartition.topic, for: runStart..<end)
            var kind = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
            let timestamp = rd_kafka_message_timestamp(batch.messages[end - 1]!, &kind)
            chunks.append(
                RecordChunk(
                    batch: batch, range: runStart..<end, partition: partition, byteCount: runBytes,
                    lastTimestamp: kind == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? nil : timestamp))
        }
        for i in 0..<count {
            let message = batch.messages[i]!
            if message.pointee.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                closeRun(at: i)
                runKey = nil
                runStart = i + 1
                runBytes = 0
                // Only sources that need them turn these events on (enable.partition.eof).
                if message.pointee.err == RD_KAFKA_RESP_ERR__PARTITION_EOF, let rkt = message.pointee.rkt {
                    partitionEnds.append(
                        (TopicPartition(topicName(rkt), message.pointee.partition), message.pointee.offset))
                }
                handleConsumeError(message)
                if message.pointee.err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET, let rkt = message.pointee.rkt {
                    fetchingStoppedByReset(TopicPartition(topicName(rkt), message.pointee.partition))
                }
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
        if !seeksAwaitingFetcher.isEmpty { chunks = seekPartitionsNowFetching(chunks, ends: &partitionEnds) }
        if !resumedUnchecked.isEmpty { chunks = dropRecordsReadBefore(chunks) }
        if configuration.offsetResetProtection != nil { chunks = protectAgainstOffsetReset(chunks) }
        var batchBytes = 0
        // Records only: end-of-partition events come in the same batches.
        var batchRecords = 0
        for chunk in chunks {
            batchBytes += chunk.byteCount
            batchRecords += chunk.range.count
            nextOffsets[chunk.topicPartition] = chunk.nextOffset
        }
        // After this batch's records are counted in, so the end comes with the last record before it.
        for (partition, end) in partitionEnds { configuration.onPartitionEnd?(partition, end, nextOffsets[partition]) }
        if batchRecords > 0 { recentRecordBytes = max(1, batchBytes / batchRecords) }
        guard !chunks.isEmpty else { return }
        instruments?.received(chunks)
        unreachableSince = nil
        let ready: [(UnsafeContinuation<Delivery?, any Error>, Delivery)] = state.withLock { s in
            guard s.phase == .running else { return [] }
            for chunk in chunks where s.assigned.contains(chunk.topicPartition) {
                batch.countedBytes += chunk.byteCount
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
        let list = PartitionList.make(
            offsets: Dictionary(uniqueKeysWithValues: partitions.map { ($0, Int64(RD_KAFKA_OFFSET_END)) }))
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
                for i in start..<chunk.range.upperBound {
                    bytes += chunk.batch.messages[i]!.pointee.len + chunk.batch.messages[i]!.pointee.key_len
                }
                result.append(
                    RecordChunk(
                        batch: chunk.batch, range: start..<chunk.range.upperBound, partition: chunk.partition,
                        byteCount: bytes, lastTimestamp: chunk.lastTimestamp))
            }
        }
        if !seekBack.isEmpty {
            logger.debug(
                "a resumed partition went back to records already read: skipped them",
                metadata: ["positions": "\(seekBack)"])
            let list = PartitionList.make(
                offsets: seekBack.filter { p, _ in !result.contains { $0.topicPartition == p } })
            if list.pointee.cnt > 0, let error = rd_kafka_seek_partitions(handle, list, 0) {
                logger.warning(
                    "restoring the position of a resumed partition",
                    metadata: ["error": "\(KafkaError.consuming(error, "seek"))"])
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
        instruments?.error(String(cString: rd_kafka_err2name(err)))
        let topic = message.pointee.rkt.map { topicName($0) } ?? "?"
        let reason = String(cString: rd_kafka_message_errstr(message))
        switch err {
        case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
            fail(
                KafkaError(
                    .kafka,
                    "not authorised to consume topic \(topic): \(reason). Grant the principal READ on the topic and the group.",
                    code: Int32(err.rawValue)))
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
            let commitWaiters = s.commits.drainAll()
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

    func housekeeping() {
        let now = ContinuousClock.now
        if state.withLock({ !$0.subsets.detachWhenReleased.isEmpty }) { detachReleasedSubsets(now: now) }
        let expired: [(UnsafeContinuation<Void, any Error>, CommitStateMachine.Request, Set<TopicPartition>)] =
            state.withLock { s in
                s.commits.machine.expire(now: now).compactMap { r in
                    s.commits.takeWaiter(r.id).map { ($0, r, s.assigned) }
                }
            }
        for (continuation, request, assigned) in expired {
            let partitions = Set(request.offsets.keys)
            let names = partitions.sorted().map(\.description).joined(separator: ", ")
            if let refusal = request.lastRefusal {
                // Refused until the deadline: say by whom and why, not a timeout; partitions that
                // moved away meanwhile are not this consumer's to commit any more.
                let moved = partitions.subtracting(assigned)
                continuation.resume(
                    throwing: KafkaError(
                        moved.isEmpty ? .commitFailed : .notAssigned,
                        "commit of \(names) refused by the group coordinator until the commitTimeout (\(configuration.commitTimeout)): \(refusal.message)"
                            + (moved.isEmpty
                                ? ""
                                : "; \(moved.sorted().map(\.description).joined(separator: ", ")) moved to another member, which reads them again from the last commit"),
                        code: refusal.code, partitions: moved.isEmpty ? partitions : moved))
            } else {
                continuation.resume(
                    throwing: KafkaError(
                        .commitTimeout,
                        "commit of \(names) not acknowledged within \(configuration.commitTimeout); the coordinator may be unreachable. Raise commitTimeout or check the cluster",
                        partitions: partitions))
            }
        }
        checkReachability(now: now)
        warnIfDownstreamHoldsTheBudget(now: now)
        if let instruments, instruments.gaugesDue(now: now) { updateGauges(instruments, now: now) }
        if lastHealthCheck.map({ now - $0 >= Self.healthCheckInterval }) ?? true { checkHealth(now: now) }
        let released = emittedOffsetHoldersDrained.exchange(false, ordering: .acquiringAndReleasing)
        let waiters = state.withLock { s in
            var waiters = perform(s.lifecycle.tick(now: now), &s)
            if released && !emittedOffsetsOutstanding {
                let more = perform(s.lifecycle.emittedOffsetsReleased(), &s)
                waiters.wakeEngine = waiters.wakeEngine || more.wakeEngine
            }
            return waiters
        }
        finish(waiters)
    }

    /// A source waits for records while fetching is paused because what the application holds
    /// downstream fills the budget: a stage that holds records until it has more than fit (a
    /// count-only `grouped`, a `buffer` nobody drains) waits forever. Said once per episode.
    private func warnIfDownstreamHoldsTheBudget(now: ContinuousClock.Instant) {
        let held: Int? = state.withLock { s in
            s.buffer.isPaused && s.buffer.isEmpty && !s.waiters.isEmpty ? s.buffer.heldBytes : nil
        }
        guard let held else {
            heldBudgetStallSince = nil
            return
        }
        guard let since = heldBudgetStallSince else {
            heldBudgetStallSince = now
            return
        }
        if now - since >= .seconds(10), !heldBudgetStallWarned {
            heldBudgetStallWarned = true
            logger.warning(
                "the stream waits for records while \(held) bytes of records it emitted are still held downstream, filling the consumer's budget: fetching resumes as they are released. A stage that holds more records than maxBufferedBytes / 2 before releasing any never gets them: raise maxBufferedBytes or make the stage emit sooner",
                metadata: ["maxBufferedBytes": "\(configuration.maxBufferedBytes)"])
        }
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
            fail(
                KafkaError(
                    .brokerUnreachable,
                    "no Kafka broker reachable for \(limit) at \(servers); check bootstrap.servers and the network, or raise brokerUnreachableTimeout (nil waits forever)"
                ))
        }
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
