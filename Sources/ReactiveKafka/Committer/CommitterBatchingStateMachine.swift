/// The batching state of a committer, as a pure state machine (no I/O):
/// which offsets form the next batch and when it is due.
struct CommitterBatchingStateMachine {
    let settings: CommitterSettings
    private(set) var batch = CommittableOffsetBatch()
    /// With `nextOffsetObserved`: the latest offset per partition, held back
    /// until a later offset of the same partition arrives.
    private var held: [TopicPartition: CommittableOffset] = [:]
    private(set) var batchStarted: ContinuousClock.Instant? {
        didSet { isCollecting = batchStarted != nil }
    }
    /// `batchStarted != nil`, kept as a plain flag for the per-offset path, where comparing
    /// the optional instant with nil costs generic value-witness calls.
    private(set) var isCollecting = false

    init(settings: CommitterSettings) { self.settings = settings }

    /// Adds an observed offset; returns a batch if it is now full. `now` is read only when
    /// the offset starts a batch (once per batch, not per offset).
    mutating func observe(_ offset: CommittableOffset, now: @autoclosure () -> ContinuousClock.Instant)
        -> CommittableOffsetBatch?
    {
        switch settings.when {
        case .offsetFirstObserved:
            add(offset, now: now)
        case .nextOffsetObserved:
            let key = offset.partitionOffset.topicPartition
            if let previous = held[key] {
                if offset.partitionOffset.offset > previous.partitionOffset.offset {
                    add(previous, now: now)
                    held[key] = offset
                }
            } else {
                // Held offsets start no batch: nothing is committable until a successor arrives,
                // so a deadline for them could never be met (and the timer would spin on it).
                held[key] = offset
            }
        }
        return batch.batchSize >= settings.maxBatch ? take() : nil
    }

    /// The batch if its first offset is at least `maxInterval` old.
    mutating func due(now: ContinuousClock.Instant) -> CommittableOffsetBatch? {
        guard let started = batchStarted, now - started >= settings.maxInterval else { return nil }
        return batch.isEmpty ? nil : take()
    }

    /// When the next batch becomes due, if anything is waiting.
    var deadline: ContinuousClock.Instant? { batchStarted.map { $0 + settings.maxInterval } }

    /// The batch as it is, now (a revoke waits for it); offsets held back by
    /// `nextOffsetObserved` stay held, their successors may not be processed yet.
    mutating func takeNow() -> CommittableOffsetBatch? {
        batch.isEmpty ? nil : take()
    }

    /// Everything held, including offsets held back by `nextOffsetObserved` (upstream ended).
    mutating func flushAll() -> CommittableOffsetBatch? {
        for offset in held.values { batch.add(offset) }
        held.removeAll()
        return batch.isEmpty ? nil : take()
    }

    private mutating func add(_ offset: CommittableOffset, now: () -> ContinuousClock.Instant) {
        if !isCollecting { batchStarted = now() }
        batch.add(offset)
    }

    private mutating func take() -> CommittableOffsetBatch {
        defer {
            batch = CommittableOffsetBatch()
            batchStarted = nil
        }
        return batch
    }
}
