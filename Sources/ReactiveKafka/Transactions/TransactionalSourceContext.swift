import Foundation
import Logging
import Synchronization

/// The transactional source's side of exactly-once: what it has emitted, what
/// the sink has committed, the consumer group metadata of the current
/// generation, and the rewind after an aborted transaction.
///
/// It is also the source's ``PartitionAssignmentHandler`` (before any handler
/// of the user's): offsets go with the member's group metadata as of its last rebalance
/// callback (KIP-447; the engine takes it as each callback begins, and a cooperative
/// rebalance changes it for the partitions the member keeps); on revoke it holds the rebalance,
/// bounded by `drainTimeout`, until every record already emitted for the revoked
/// partitions is committed in a transaction (asking the sink to commit now), so their
/// next owner starts exactly after them. A revoked or lost partition's
/// ``TransactionalPartition`` ends: what was emitted for it and not committed by then is
/// never committed by this member (the sink drops it, or aborts a transaction holding it). The engine reaches it through a
/// ``TransactionalRebalanceForwarder`` that holds it weakly: the context holds the engine
/// (for rewinds) and the engine holds its handler for its whole life, so registering the
/// context itself made a cycle that leaked every transactional source's engine.
final class TransactionalSourceContext: PartitionAssignmentHandler, TransactionalSourceLink, @unchecked Sendable {
    private struct WeakSink {
        weak var sink: (any TransactionalSinkHandle)?
    }

    private struct State {
        var metadata: ConsumerGroupMetadata?
        /// The source's engine, taken from the first record emitted (a rewind seeks it). Strong:
        /// the engine reaches this context only weakly (``TransactionalRebalanceForwarder``).
        var engine: ConsumerEngine?
        /// Last offset emitted per partition (the partition emitted last is kept apart, see `last`).
        var emitted: [TopicPartition: Int64] = [:]
        /// The partition emitted last (records come in runs of one partition): the engine's
        /// object for it, the offsets' shared object, and the last offset.
        var lastConsumed: ConsumedPartition?
        var last: TransactionalPartition?
        var lastOffset: Int64 = 0
        /// The offsets' shared object per partition, for its current period of ownership.
        var partitions: [TopicPartition: TransactionalPartition] = [:]
        /// Next offset committed by the sink's transactions, per partition.
        var committedNext: [TopicPartition: Int64] = [:]
        /// The partitions a rebalance assigned, with the number of their period of ownership.
        var owned: [TopicPartition: UInt64] = [:]
        var nextOwnership: UInt64 = 0
        var sinks: [ObjectIdentifier: WeakSink] = [:]

        mutating func foldLast() {
            if let last { emitted[last.topicPartition] = lastOffset }
            last = nil
            lastConsumed = nil
        }
    }

    private static let logger = Logger(label: "reactive-kafka.transactional-source")

    let groupId: String
    let drainTimeout: Duration
    let userHandler: (any PartitionAssignmentHandler)?
    /// Whether a rewind also drops the partitions' records fetched before it (a single
    /// source). A partition's sub-stream would end on that, so partitioned sources only
    /// seek, and the sink drops the older records as they come (offset-based, see
    /// ``TransactionalStageRun``).
    let dropsFetchedOnRewind: Bool
    private let state = Mutex(State())
    private let commits = NSCondition()
    /// Bumped on every commit the sink reports, read under `commits`.
    private var commitCount = 0

    init(
        groupId: String, drainTimeout: Duration, userHandler: (any PartitionAssignmentHandler)?,
        dropsFetchedOnRewind: Bool = true
    ) {
        self.groupId = groupId
        self.drainTimeout = drainTimeout
        self.userHandler = userHandler
        self.dropsFetchedOnRewind = dropsFetchedOnRewind
    }

    // MARK: Emission (the source's iterator)

    /// A record at `offset` of `consumed` is being emitted; returns what its
    /// ``TransactionalOffset`` shares with the partition's other offsets (with the group
    /// metadata to send). Within a run of one partition: a lock, an identity check, a store.
    @inline(__always)
    func emit(_ consumed: ConsumedPartition, _ offset: Int64, engine: EngineReference) throws(KafkaError)
        -> TransactionalPartition
    {
        let emitted = state.withLock { s -> TransactionalPartition? in
            if s.lastConsumed === consumed, let last = s.last {
                s.lastOffset = offset
                return last
            }
            return switchPartition(&s, consumed, offset, engine: engine)
        }
        if let emitted { return emitted }
        // A manual assignment has no rebalance (so no onAssign): the group id alone.
        let made = try ConsumerGroupMetadata(groupId: groupId)
        return try state.withLock { s throws(KafkaError) -> TransactionalPartition in
            if s.metadata == nil { s.metadata = made }
            guard let partition = switchPartition(&s, consumed, offset, engine: engine) else {
                throw KafkaError(.illegalState, "the transactional source has no consumer group metadata")
            }
            return partition
        }
    }

    /// The record starts a run of another partition (or the first after a rebalance); nil
    /// while there is no group metadata yet.
    private func switchPartition(
        _ s: inout State, _ consumed: ConsumedPartition, _ offset: Int64, engine: EngineReference
    ) -> TransactionalPartition? {
        guard let metadata = s.metadata else { return nil }
        s.foldLast()
        if s.engine == nil { s.engine = engine.engine }
        let partition: TransactionalPartition
        if let known = s.partitions[consumed.topicPartition], !known.hasEnded {
            partition = known
        } else {
            partition = TransactionalPartition(
                consumed.topicPartition, groupId: groupId, groupMetadata: metadata, source: self,
                ownership: s.owned[consumed.topicPartition])
            s.partitions[consumed.topicPartition] = partition
        }
        s.lastConsumed = consumed
        s.last = partition
        s.lastOffset = offset
        return partition
    }

    // MARK: TransactionalSourceLink (the sink)

    var currentGroupMetadata: ConsumerGroupMetadata? {
        let (engine, metadata) = state.withLock { ($0.engine, $0.metadata) }
        // The engine's is taken at the start of each rebalance callback, before anything waiting
        // for it resumes; this context's own only in its handler calls, later.
        return engine?.groupRequests.groupMetadata ?? metadata
    }

    var ownedPartitions: [TopicPartition: UInt64] { state.withLock { $0.owned } }

    func waitWhileRejoining() async {
        await state.withLock { $0.engine }?.waitWhileRejoining()
    }

    func waitForMetadata(replacing refused: ConsumerGroupMetadata) async {
        await state.withLock { $0.engine }?.waitForGroupMetadata(replacing: refused)
    }

    func attach(_ sink: any TransactionalSinkHandle) {
        state.withLock { $0.sinks[ObjectIdentifier(sink)] = WeakSink(sink: sink) }
    }

    func detach(_ sink: any TransactionalSinkHandle) {
        _ = state.withLock { $0.sinks.removeValue(forKey: ObjectIdentifier(sink)) }
        // A revoke waiting for this sink's commits stops waiting.
        commitsChanged()
    }

    func committed(_ offsets: [TopicPartition: Int64]) {
        state.withLock { s in
            for (partition, next) in offsets {
                s.committedNext[partition] = max(s.committedNext[partition] ?? Int64.min, next)
            }
        }
        commitsChanged()
    }

    func rewind(_ offsets: [TopicPartition: Int64]) async throws(KafkaError) {
        guard !offsets.isEmpty else { return }
        // Nothing emitted for them is waiting to be committed any more: it is read again (here,
        // or by the next owner of a partition being revoked), so a revoke's drain stops waiting.
        // (The seek below runs on the consumer's thread, after a revoke callback in progress.)
        state.withLock { s in
            s.foldLast()
            for partition in offsets.keys { s.emitted[partition] = nil }
        }
        commitsChanged()
        guard let engine = state.withLock({ $0.engine }) else {
            // The offsets are of records this source emitted, and the first one set the engine.
            throw KafkaError(
                .illegalState,
                "the transactional source cannot rewind \(offsets.keys.sorted()): it has emitted no record, so it has no consumer to seek"
            )
        }
        // Only partitions still assigned: a revoked one is read by its next owner from the committed offset.
        try await engine.rewind(offsets, droppingFetched: dropsFetchedOnRewind) { [self] mine in
            state.withLock { s in
                s.foldLast()
                for partition in mine { s.emitted[partition] = nil }
            }
        }
    }

    // MARK: PartitionAssignmentHandler (the consumer's thread)

    func onAssign(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {
        // What new partition objects start with (a group's: none is made from the group id alone).
        let metadata = try? consumer.groupMetadata()
        state.withLock { s in
            if let metadata { s.metadata = metadata }
            for partition in partitions {
                s.owned[partition] = s.nextOwnership
                s.nextOwnership += 1
            }
        }
        for sink in sinks() { sink.partitionsReassigned(partitions) }
        userHandler?.onAssign(partitions, consumer: consumer)
    }

    func onRevoke(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {
        // A cooperative revoke comes after the member joined the next generation: the drain's
        // commits carry it, as the engine took it when this callback began (currentGroupMetadata).
        drain(partitions)
        forget(partitions)
        userHandler?.onRevoke(partitions, consumer: consumer)
    }

    func onLost(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {
        // Their offsets must not be committed by us any more: forgetting ends their objects.
        forget(partitions)
        userHandler?.onLost(partitions, consumer: consumer)
    }

    func onStop(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {
        userHandler?.onStop(partitions, consumer: consumer)
    }

    /// Waits (bounded) until every record emitted for `partitions` is committed.
    private func drain(_ partitions: Set<TopicPartition>) {
        let deadline = ContinuousClock.now + drainTimeout
        while true {
            let outstanding = state.withLock { s -> Set<TopicPartition> in
                s.foldLast()
                return Set(
                    partitions.filter { p in s.emitted[p].map { (s.committedNext[p] ?? Int64.min) <= $0 } ?? false })
            }
            if outstanding.isEmpty { return }
            let sinks = sinks()
            if sinks.isEmpty { return } // nothing will ever commit them
            let now = ContinuousClock.now
            if now >= deadline {
                Self.logger.warning(
                    "revoking partitions before the records emitted for them were committed in a transaction: their next owner reads them again",
                    metadata: ["partitions": "\(outstanding.sorted())", "waited": "\(drainTimeout)"])
                return
            }
            commits.lock()
            let seen = commitCount
            commits.unlock()
            for sink in sinks { sink.requestCommitNow() }
            commits.lock()
            let until = Date(
                timeIntervalSinceNow: min(
                    0.1,
                    Double((deadline - now).components.attoseconds) / 1e18 + Double((deadline - now).components.seconds)
                ))
            while commitCount == seen, commits.wait(until: until) {}
            commits.unlock()
        }
    }

    /// The partitions left this member: their period of ownership ends.
    private func forget(_ partitions: Set<TopicPartition>) {
        state.withLock { s in
            s.foldLast()
            for p in partitions {
                s.emitted[p] = nil
                s.committedNext[p] = nil
                s.owned[p] = nil
                s.partitions.removeValue(forKey: p)?.end()
            }
        }
        for sink in sinks() { sink.partitionsReassigned(partitions) }
    }

    /// Wakes a revoke's drain to look again at what is outstanding.
    private func commitsChanged() {
        commits.lock()
        commitCount += 1
        commits.broadcast()
        commits.unlock()
    }

    private func sinks() -> [any TransactionalSinkHandle] {
        state.withLock { s in s.sinks.values.compactMap(\.sink) }
    }
}

/// The transactional source's rebalance handler as its consumer engine holds it: forwards to
/// the source's context while the source exists, and to the user's handler alone after it.
///
/// Weak, because the context holds the engine (a rewind seeks it, and the partition of its
/// last record refers to it) and the engine holds its handler until it is freed: a strong
/// reference here was a cycle that kept every transactional source's engine (handle, thread
/// objects, queues, group metadata) alive forever. The context lives as long as the source
/// (the source's element factory holds it), so while records can be emitted it is there.
final class TransactionalRebalanceForwarder: PartitionAssignmentHandler, @unchecked Sendable {
    /// Set once, in `init`.
    private weak var context: TransactionalSourceContext?
    private let userHandler: (any PartitionAssignmentHandler)?

    init(_ context: TransactionalSourceContext) {
        self.context = context
        self.userHandler = context.userHandler
    }

    func onAssign(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {
        if let context {
            context.onAssign(partitions, consumer: consumer)
        } else {
            userHandler?.onAssign(partitions, consumer: consumer)
        }
    }

    func onRevoke(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {
        if let context {
            context.onRevoke(partitions, consumer: consumer)
        } else {
            userHandler?.onRevoke(partitions, consumer: consumer)
        }
    }

    func onLost(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {
        if let context {
            context.onLost(partitions, consumer: consumer)
        } else {
            userHandler?.onLost(partitions, consumer: consumer)
        }
    }

    func onStop(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {
        if let context {
            context.onStop(partitions, consumer: consumer)
        } else {
            userHandler?.onStop(partitions, consumer: consumer)
        }
    }
}
