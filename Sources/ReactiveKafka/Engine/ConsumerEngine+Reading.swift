import CRdKafka
import Foundation
import Synchronization

/// Reading: sources and partitioned sources take records from the buffer in whole batches.
extension ConsumerEngine {
    /// The next batch of records; `nil` once the consumer stopped. Suspends
    /// (one continuation for the whole batch) only when nothing is buffered.
    func nextDelivery(for reader: Reader = .all, since epoch: UInt64 = 0) async throws -> Delivery? {
        enum Immediate {
            case delivery(Delivery?, wakeEngine: Bool)
            case failure(KafkaError)
            case wait
        }
        let (immediate, released): (Immediate, Bool) = state.withLock { s in
            // Coming back for more means the previous batch was emitted in full: a waiting revoke wants to know.
            let released = s.emitted.readerReturned(reader)
            if let failure = s.failure { return (.failure(failure), released) }
            if s.phase != .running || isFinished(reader, since: epoch, s) {
                return (.delivery(nil, wakeEngine: false), released)
            }
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
            // A producer flow pulling this source in the same task produces what it holds now.
            UpstreamWait.listener?.upstreamWillWait()
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
                            return (
                                .failure(
                                    KafkaError(
                                        .illegalState,
                                        "this Kafka source is already being read: a source (or a partition's sub-stream) can be run once"
                                    )), false
                            )
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
        var (taken, flow): ([RecordChunk], ConsumerBufferStateMachine<RecordChunk>.FlowControl)
        switch reader {
        case .all: (taken, flow) = s.buffer.take(maxRecords: configuration.maxBatchSize)
        case .partition(let p): (taken, flow) = s.buffer.take(maxRecords: configuration.maxBatchSize, of: p)
        case .subset(let id):
            var chunks: [RecordChunk] = []
            var records = 0
            var changed: ConsumerBufferStateMachine<RecordChunk>.FlowControl = .none
            for p in s.subsets.partitions[id] ?? [] where s.buffer.hasRecords(of: p) {
                guard records < configuration.maxBatchSize else { break }
                let (some, flow) = s.buffer.take(maxRecords: configuration.maxBatchSize - records, of: p)
                chunks += some
                records += some.reduce(0) { $0 + $1.recordCount }
                if flow != .none { changed = flow }
            }
            (taken, flow) = (chunks, changed)
        }
        if flow != .none { s.pendingFlowControl.append(flow) }
        if !taken.isEmpty { s.batchesTaken &+= 1 }
        if instruments != nil {
            for chunk in taken { s.handedOutPositions[chunk.topicPartition] = chunk.nextOffset }
        }
        let epoch = revocationEpoch.load(ordering: .acquiring)
        if configuration.stampsHandedOutChunks {
            if case .subset(let id) = reader {
                // Counted per source: an ended source keeps its partitions while they live.
                for i in taken.indices {
                    taken[i].partition = taken[i].partition.handedOut(takenAt: epoch, counted: true, subset: id)
                }
                if !taken.isEmpty { subsetOffsetHolders.withLock { $0[id, default: 0] += taken.count } }
            } else {
                let counted = configuration.countsEmittedOffsets
                for i in taken.indices {
                    taken[i].partition = taken[i].partition.handedOut(takenAt: epoch, counted: counted)
                }
                if counted { emittedOffsetHolders.add(taken.count, ordering: .relaxed) }
            }
        }
        if s.emitted.tracksHandedOut || s.emitted.storesEmitted {
            var next: [TopicPartition: Int64] = [:]
            for chunk in taken { next[chunk.topicPartition] = chunk.nextOffset }
            s.emitted.handedOut(next, to: reader)
        }
        return (Delivery(chunks: taken, epoch: epoch), flow != .none)
    }

    func hasRecords(for reader: Reader, _ s: State) -> Bool {
        switch reader {
        case .all: return !s.buffer.isEmpty
        case .partition(let p): return s.buffer.hasRecords(of: p)
        case .subset(let id): return s.subsets.partitions[id]?.contains { s.buffer.hasRecords(of: $0) } ?? false
        }
    }

    /// A partition's sub-stream ends when its partition is revoked (a later
    /// assignment of the same partition gets a new sub-stream).
    private func isFinished(_ reader: Reader, since epoch: UInt64, _ s: State) -> Bool {
        switch reader {
        case .all: return false
        case .partition(let p): return !s.assigned.contains(p) || (s.invalidatedAt[p] ?? 0) > epoch
        case .subset(let id): return s.subsets.isStopped(id)
        }
    }

    /// Whether the partition of an offset taken at `epoch` stayed this consumer's since (``OffsetCommitter``).
    func stillOwns(_ partition: TopicPartition, takenAt epoch: UInt64) -> Bool {
        keeps(partition, takenAt: epoch)
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
            s.emitted.readerDropped(reader, firstUnemitted: firstUnemitted, stillHolding: stillHolding)
        }
        if waiting { wakeup.signal() }
    }

    /// The next partitions assigned, for a partitioned source; `nil` once the consumer stopped.
    /// Throws `CancellationError` when the waiting task is cancelled.
    func nextAssignedPartitions() async throws -> [Announcement]? {
        try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<[Announcement]?, any Error>) in
                let now: Result<[Announcement]?, any Error>? = state.withLock { s in
                    if let failure = s.failure { return .failure(failure) }
                    if s.phase != .running { return .success(nil) }
                    if !s.announcements.pending.isEmpty { return .success(s.announcements.takePending()) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if s.announcements.waiter != nil {
                        return .failure(
                            KafkaError(
                                .illegalState, "this partitioned source is already being read: a source can be run once"
                            ))
                    }
                    s.announcements.waiter = continuation
                    return nil
                }
                if let now { continuation.resume(with: now) }
            }
        } onCancel: {
            let waiter = state.withLock { s in s.announcements.takeWaiter() }
            waiter?.resume(throwing: CancellationError())
        }
    }

    /// Partitions assigned right now (for partitioned sources and tests).
    func assignedPartitions() -> Set<TopicPartition> {
        state.withLock { $0.assigned }
    }
}
