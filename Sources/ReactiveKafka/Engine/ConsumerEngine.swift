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
        /// Committable sources: an ended stream's consumer waits (bounded) until every emitted
        /// offset still alive downstream is committed or dropped (see ``ConsumedPartition/handedOut(takenAt:counted:)``).
        var countsEmittedOffsets: Bool = false
        /// Committable sources (not transactional): each chunk a reader takes gets its own
        /// ``ConsumedPartition`` stamped with the epoch it was taken at (counted or not).
        var stampsHandedOutChunks: Bool = false
        /// Sources read per partition (sub-streams): a slow partition is paused on its own.
        var partitioned: Bool = false
        var offsetResetProtection: OffsetResetProtection?
        var events: RebalanceEventHub?
        var metrics: KafkaMetricsSettings = KafkaMetricsSettings()
        /// Where the engine publishes its health (the control's hub), and when records waiting
        /// for a stream that takes none make it stalled.
        var health: ConsumerHealthHub?
        var stallThreshold: Duration = .seconds(60)
        /// Told, on the engine thread, when a partition reaches its end (librdkafka's partition EOF,
        /// with `enable.partition.eof`): the end offset, and the offset after the last record the
        /// engine read of it (nil if none since it was assigned or sought). Tables use it to see the
        /// end of a log whose last entries are transaction markers, which no record reaches.
        var onPartitionEnd: (@Sendable (TopicPartition, _ end: Int64, _ afterLastRecord: Int64?) -> Void)?
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

    typealias State = ConsumerEngineState

    let configuration: Configuration
    /// The values of secret properties, scrubbed from librdkafka's texts before they are logged or thrown.
    let secretValues: SecretValues
    let handle: OpaquePointer
    /// Destroys `handle` once the engine and every fetched batch have let go (see ``ClientHandleOwner``).
    var clientOwner: ClientHandleOwner?
    let consumerQueue: OpaquePointer
    let commitQueue: OpaquePointer
    /// Assigned partitions' fetch queues are forwarded here, away from the
    /// consumer queue, so records can be left in librdkafka while the buffer is
    /// over budget without starving callbacks and events.
    let messageQueue: OpaquePointer
    let wakeup: WakeupSignal
    /// Batches the application let go of: their bytes leave the budget (see ``HeldBatchReleases``).
    let heldBatchReleases: HeldBatchReleases
    let callbackTarget: CallbackTarget
    let state: Mutex<State>
    /// Incremented on every revocation; a source re-checks its records against
    /// the assignment when it changes, so no record is emitted after its
    /// partition was revoked.
    @usableFromInline let revocationEpoch = Atomic<UInt64>(0)
    /// Whether closing completed librdkafka's consumer close (which leaves the group).
    let leftGroupCleanly = Atomic<Bool>(false)
    /// Counted ``ConsumedPartition``s alive (``Configuration/countsEmittedOffsets``): chunks taken by
    /// readers whose records or offsets may still be committed downstream.
    let emittedOffsetHolders = Atomic<Int>(0)
    /// Counted chunk partitions alive per shared-consumer source (``ConsumedPartition``).
    let subsetOffsetHolders = Mutex<[UInt64: Int]>([:])
    /// Set when ``emittedOffsetHolders`` reached zero, for the engine thread to tell the lifecycle.
    let emittedOffsetHoldersDrained = Atomic<Bool>(false)
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
    /// swift-metrics instruments (nil when metrics are off), updated per batch and per second.
    let instruments: ConsumerInstruments?
    /// The consumer's health, derived on the engine thread (``ConsumerHealthStateMachine``).
    var healthMachine: ConsumerHealthStateMachine
    var lastHealthCheck: ContinuousClock.Instant?
    /// Whether partitions were assigned at least once (the member joined its group).
    var joinedOnce = false
    var topicNames: [OpaquePointer: String] = [:]
    var consumedPartitions: [TopicPartition: ConsumedPartition] = [:]
    /// The assigned partitions' fetch queues, forwarded to ``messageQueue``; let go when it is destroyed.
    var partitionQueues = PartitionQueues()
    var unreachableSince: ContinuousClock.Instant?
    /// Since when a source has waited while records held downstream fill the budget, and whether that was said.
    var heldBudgetStallSince: ContinuousClock.Instant?
    var heldBudgetStallWarned = false
    var lastReachabilityProbe: ContinuousClock.Instant?
    var sendStarted: [UInt64: ContinuousClock.Instant] = [:]
    /// Offsets of commits in flight, to learn what is committed (rebalance-safe commits).
    var sentOffsets: [UInt64: [TopicPartition: Int64]] = [:]
    /// Set when the coordinator refused a commit because the group is rebalancing (engine thread).
    var commitsRefusedByRebalance = false
    /// The offset after the last record read per partition, and the average size of recent
    /// records (engine thread): where a resumed partition continues, how many records fit.
    var nextOffsets: [TopicPartition: Int64] = [:]
    var recentRecordBytes = 1024
    /// Where fetcher wake-ups are sent from (they block until the brokers answer, at most
    /// 1 s each): the engine's own second thread, never Dispatch's or Swift's pools.
    let fetcherWakeUps = BlockingCallThread(name: "rkafka-wake")
    /// Resumed partitions whose first records are yet to be checked for a step back.
    var resumedUnchecked: Set<TopicPartition> = []
    /// Seeks librdkafka refused because the partition's fetcher had not started yet, made at the
    /// partition's first fetched record or end (engine thread; see ConsumerEngine+Seeking).
    var seeksAwaitingFetcher: [TopicPartition: Int64] = [:]
    /// Partitions whose fetching stopped for want of a start (`auto.offset.reset` `error`): a seek
    /// could never be made there (engine thread; cleared when they are taken away).
    var fetchersStoppedByReset: Set<TopicPartition> = []
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
    /// When the group may be rejoining, as librdkafka's interceptors tell (ConsumerEngine+Rebalance).
    var groupRequests: GroupRequestWatch { callbackTarget.groupRequests }

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
        self.healthMachine = ConsumerHealthStateMachine(stallThreshold: configuration.stallThreshold)
        self.instruments = ConsumerInstruments(
            configuration.metrics, group: configuration.groupId, clientId: configuration.properties["client.id"])
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
        self.heldBatchReleases = HeldBatchReleases(wakeup: wakeup)
        var buffer = ConsumerBufferStateMachine<RecordChunk>(
            maxBufferedBytes: configuration.maxBufferedBytes, countsHeldBytes: true)
        if configuration.partitioned { buffer.perPartitionBudget = buffer.pauseThreshold }
        self.state = Mutex(
            State(
                buffer: buffer,
                lifecycle: ConsumerLifecycleStateMachine(endsWithItsSources: configuration.endsWithItsSources),
                emitted: EmittedOffsetTracker(
                    tracksHandedOut: configuration.rebalanceSafeCommitTimeout != nil,
                    storesEmitted: configuration.storesEmittedOffsets)))

        // librdkafka hands this box to the C callbacks; it points back to the engine once built.
        let callbackTarget = CallbackTarget()
        self.callbackTarget = callbackTarget
        // Unretained: the handle's owner keeps the target alive until the handle is destroyed
        // (`ClientHandleOwner.callbackOpaque`, set as soon as the handle exists).
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(callbackTarget).toOpaque())
        rd_kafka_conf_set_rebalance_cb(conf, engineRebalanceCallback)
        callbackTarget.groupRequests.install(on: conf)
        rd_kafka_conf_set_error_cb(conf, engineErrorCallback)
        if statisticsInterval != nil { rd_kafka_conf_set_stats_cb(conf, engineStatisticsCallback) }
        let handle: OpaquePointer
        do {
            // librdkafka may quote a secret in its reason: newClient scrubs it.
            handle = try KafkaClientConfiguration.newClient(
                RD_KAFKA_CONSUMER, conf, properties: properties, client: "consumer")
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
            let topics = PartitionList.make(
                configuration.subscription.topicNames.map { TopicPartition($0, RD_KAFKA_PARTITION_UA) })
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

}

extension ConsumerEngine {
    fileprivate func onError(_ err: Int32, _ reason: String) {
        let code = rd_kafka_resp_err_t(err)
        if code == RD_KAFKA_RESP_ERR__FATAL {
            var buffer = [CChar](repeating: 0, count: 512)
            let original = rd_kafka_fatal_error(handle, &buffer, buffer.count)
            fail(
                KafkaError(
                    .fatal,
                    "librdkafka fatal error \(String(cString: rd_kafka_err2name(original))): \(secretValues.scrub(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)))",
                    code: Int32(original.rawValue)))
            return
        }
        if code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || code == RD_KAFKA_RESP_ERR__RESOLVE {
            if unreachableSince == nil { unreachableSince = .now }
        }
        logger.warning(
            "kafka error",
            metadata: [
                "code": "\(String(cString: rd_kafka_err2name(code)))", "reason": "\(secretValues.scrub(reason))",
            ])
    }

    fileprivate func onStatistics(_ json: String) {
        state.withLock { $0.statisticsJSON = json }
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
    /// Told by librdkafka's interceptors when the group may be rejoining (alive as long as the handle).
    let groupRequests = GroupRequestWatch()
}

private func engine(_ opaque: UnsafeMutableRawPointer?) -> ConsumerEngine? {
    // The opaque is the CallbackTarget, which the handle's owner keeps alive until the handle is destroyed.
    opaque.flatMap { Unmanaged<CallbackTarget>.fromOpaque($0).takeUnretainedValue().engine?.takeUnretainedValue() }
}

private let engineRebalanceCallback:
    @convention(c) (
        OpaquePointer?, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?,
        UnsafeMutableRawPointer?
    ) -> Void = { _, err, partitions, opaque in
        engine(opaque)?.onRebalance(err, partitions)
    }

private let engineErrorCallback:
    @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Void = {
        _, err, reason, opaque in
        engine(opaque)?.onError(err, reason.map { String(cString: $0) } ?? "")
    }

private let engineStatisticsCallback:
    @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?, Int, UnsafeMutableRawPointer?) -> Int32 = {
        _, json, length, opaque in
        if let json {
            let text = String(decoding: UnsafeRawBufferPointer(start: json, count: length), as: UTF8.self)
            engine(opaque)?.onStatistics(text)
        }
        return 0
    }
