import StreamKit

/// Partitions: reading each assigned partition, and letting it go (revoke, end) with its
/// completed offsets committed.
extension ParallelRun {
    /// What a previous owner committed for newly assigned partitions (read before they are read).
    func remember(_ previous: [TopicPartition: CommitPosition]) {
        state.withLock { s in
            for (partition, position) in previous {
                s.previous[partition] = (
                    position.nextOffset, OffsetMetadataCodec.decode(position.metadata, committed: position.nextOffset)
                )
            }
        }
    }

    /// Reads `partition`'s sub-stream until it ends (revoked, lost, the consumer stopped), then
    /// lets the partition go: its queued records are dropped, its running ones finish (within
    /// ``ParallelSettings/drainTimeout``) and what completed is committed.
    func read(
        _ partition: TopicPartition, _ records: Source<KafkaConsumerSequence<Message>, Void>, engine: ConsumerEngine?
    ) async {
        let lane = state.withLock { s in
            let lane = s.nextLane
            s.nextLane += 1
            s.lanes[lane] = Lane(partition: partition, previous: s.previous.removeValue(forKey: partition))
            return lane
        }
        do {
            for try await message in records { await received(message, lane: lane) }
        } catch is CancellationError {
        } catch {
            fail(error)
        }
        await letGo(lane, engine: engine)
    }

    private func letGo(_ lane: UInt64, engine: ConsumerEngine?) async {
        let (running, letting) = state.withLock { s -> (Bool, TopicPartition?) in
            s.lanes[lane]?.ending = true
            _ = s.scheduler.removeLane(lane)
            return (s.scheduler.running(lane) > 0, s.lanes[lane]?.partition)
        }
        // Exactly-once: its records produce no more (their outputs would commit without their offsets).
        transactions?.withdraw([lane])
        if running { await drain(lane) }
        if let transactions {
            await transactions.commit(engine: engine) { acknowledged in self.transactionalPositions(acknowledged) }
            let committed = state.withLock { s in s.lanes.removeValue(forKey: lane)?.sent }
            if let letting, let committed {
                engine?.readerDropped(
                    .partition(letting), firstUnemitted: [letting: committed.nextOffset], stillHolding: [])
            }
            return
        }
        let (partition, position, committed, committer) = state.withLock {
            s -> (TopicPartition?, CommitPosition?, Bool, (any OffsetCommitter)?) in
            guard let l = s.lanes.removeValue(forKey: lane) else { return (nil, nil, true, nil) }
            guard let progress = l.progress else { return (l.partition, nil, true, nil) }
            let position = self.position(progress)
            return (l.partition, position, position == l.sent, s.committer)
        }
        guard let partition, let position else { return }
        // A revoke waits for the records emitted for the partition to be committed: those
        // dropped from the queue never will be, so it is told where completion stops, also
        // when that position was committed already (else it waits out its timeout).
        engine?.readerDropped(.partition(partition), firstUnemitted: [partition: position.nextOffset], stillHolding: [])
        guard !committed, let committer else { return }
        await commit([partition: position], committer)
    }

    /// Waits until `lane` has no record running, `drainTimeout` at most.
    private func drain(_ lane: UInt64) async {
        let timer = Task { [settings] in
            try? await Task.sleep(for: settings.drainTimeout)
            let waiter = self.state.withLock { s in
                defer { s.lanes[lane]?.drainWaiter = nil }
                return s.lanes[lane]?.drainWaiter
            }
            waiter?.resume()
        }
        await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                guard s.lanes[lane] != nil, s.scheduler.running(lane) > 0 else { return true }
                s.lanes[lane]!.drainWaiter = c
                return false
            }
            if now { c.resume() }
        }
        timer.cancel()
        let stillRunning = state.withLock { $0.scheduler.running(lane) }
        if stillRunning > 0 {
            logger.warning(
                "letting a partition go with records still running after drainTimeout: they are processed again by its next reader",
                metadata: ["running": "\(stillRunning)", "drainTimeout": "\(settings.drainTimeout)"])
        }
    }

    /// Where `progress` commits: the first record not done, and the records done above it.
    func position(_ progress: PartitionProgress) -> CommitPosition {
        let metadata =
            settings.maxMetadataBytes > 0
            ? OffsetMetadataCodec.encode(
                base: progress.committable, done: progress.completedAbove, maxBytes: settings.maxMetadataBytes)
            : nil
        return CommitPosition(nextOffset: progress.committable, metadata: metadata)
    }

    /// Commits `positions`, in a task of its own so that a stream being cancelled still commits
    /// what completed (bounded by the consumer's commit timeout).
    func commit(_ positions: [TopicPartition: CommitPosition], _ committer: any OffsetCommitter) async {
        guard !positions.isEmpty else { return }
        let logger = logger
        await Task {
            do throws(KafkaError) {
                try await committer.commit(positions)
            } catch  where error.kind == .notAssigned {
                // Its next owner reads from the last commit: at-least-once holds.
                logger.debug(
                    "completed offsets of partitions no longer assigned were not committed",
                    metadata: ["partitions": "\(error.partitions.sorted())"])
            } catch {
                logger.warning("committing completed offsets failed", metadata: ["error": "\(error)"])
            }
        }.value
    }

    /// Commits every partition whose position moved, once something completed and then every
    /// `commitInterval` while records complete. Ends when its task is cancelled.
    func commitPeriodically() async {
        while !Task.isCancelled {
            await withTaskCancellationHandler {
                await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
                    let now = state.withLock { s -> Bool in
                        if s.dirty || s.closing { return true }
                        s.commitWaiter = c
                        return false
                    }
                    if now { c.resume() }
                }
            } onCancel: {
                let waiter = state.withLock { s in
                    defer { s.commitWaiter = nil }
                    return s.commitWaiter
                }
                waiter?.resume()
            }
            do { try await Task.sleep(for: settings.commitInterval) } catch { return }
            await commitNow()
        }
    }

    /// Commits the partitions whose position moved since their last commit.
    func commitNow() async {
        if let transactions {
            let engine = state.withLock { $0.engine }
            await transactions.commit(engine: engine) { acknowledged in self.transactionalPositions(acknowledged) }
            return
        }
        let (positions, committer) = state.withLock { s -> ([TopicPartition: CommitPosition], (any OffsetCommitter)?) in
            s.dirty = false
            var positions: [TopicPartition: CommitPosition] = [:]
            for (id, lane) in s.lanes where !lane.ending {
                guard let progress = lane.progress else { continue }
                let position = self.position(progress)
                if position != lane.sent {
                    positions[lane.partition] = position
                    s.lanes[id]!.sent = position
                }
            }
            return (positions, s.committer)
        }
        if let committer { await commit(positions, committer) }
    }

    /// Exactly-once: every partition's position (those letting go too) with `acknowledged`
    /// (offsets whose outputs are in the open transaction) completed first, where it moved since
    /// the last transaction. Called with the send gate closed and quiet.
    func transactionalPositions(_ acknowledged: [UInt64: [Int64]]) -> [TopicPartition: CommitPosition] {
        state.withLock { s in
            s.dirty = false
            var positions: [TopicPartition: CommitPosition] = [:]
            for (id, lane) in s.lanes where lane.progress != nil {
                // In place, as in `received`; completing again when the worker settles is a no-op.
                for offset in acknowledged[id] ?? [] { s.lanes[id]!.progress!.complete(offset) }
                let position = self.position(s.lanes[id]!.progress!)
                if position != lane.sent {
                    positions[lane.partition] = position
                    s.lanes[id]!.sent = position
                }
            }
            return positions
        }
    }

    /// A revoke waits for commits (the consumer's thread; kept short): readers waiting for room
    /// read on, so that the sub-streams of revoked partitions end and let them go.
    func revokeStarting() {
        let waiters = state.withLock { s in
            var waiters: [UnsafeContinuation<Void, Never>] = []
            for (id, lane) in s.lanes {
                if let waiter = lane.roomWaiter { waiters.append(waiter) }
                s.lanes[id]!.roomWaiter = nil
            }
            return waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}
