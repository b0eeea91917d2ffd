/// How ``Committer`` stages batch and send commits: Alpakka's `CommitterSettings`.
public struct CommitterSettings: Sendable, Equatable {
    /// Whether a commit waits for the broker's answer before the stage goes on.
    public enum Delivery: Sendable, Equatable {
        /// Wait for the broker to acknowledge each batch; a failed commit fails the stream.
        case waitForAck
        /// Send the batch and go on at once; failures are logged only.
        case sendAndForget
    }

    /// Which offset a batch commits for a partition.
    public enum When: Sendable, Equatable {
        /// Commit as soon as an offset is seen.
        case offsetFirstObserved
        /// Commit a partition's offset only once a later offset of that partition
        /// is seen (or the stream completes): for flows that emit the same offset
        /// several times, as `multi` producer messages do.
        case nextOffsetObserved
    }

    /// What a committer does with offsets of partitions their consumer no longer
    /// owns: revoked in a rebalance before their commit was sent, or refused by
    /// the coordinator until the partitions moved away. Those offsets are never
    /// committed (nor reported as committed); their next owner reads the records
    /// again, so at-least-once holds either way.
    public enum NotAssignedOffsets: Sendable, Equatable {
        /// Leave them out, count them (`reactive_kafka_committer_skipped_offsets`,
        /// swift-metrics), log a warning, and go on. Batches emitted by
        /// ``Committer/batchFlow(_:)`` then hold only the committed offsets.
        case skip
        /// Fail the stream with ``KafkaError/Kind/notAssigned``.
        case fail
    }

    /// The most offsets gathered into one commit.
    public var maxBatch: Int = 1000
    /// The longest an offset waits before its batch is committed.
    public var maxInterval: Duration = .seconds(10)
    /// The most commits in flight at once.
    public var parallelism: Int = 100
    /// Whether commits wait for acknowledgement.
    public var delivery: Delivery = .waitForAck
    /// Which offsets are committed.
    public var when: When = .offsetFirstObserved
    /// What happens to offsets of partitions no longer assigned; `.skip` by default.
    public var notAssignedOffsets: NotAssignedOffsets = .skip
    /// What the committer reports through swift-metrics: batch sizes, offsets committed,
    /// commit latency (see ``MessagingMetric``). On by default.
    public var metrics: KafkaMetricsSettings = KafkaMetricsSettings()

    /// Alpakka's defaults: 1000 offsets, 10 s, 100 in flight, wait for ack, first observed;
    /// offsets of partitions no longer assigned are skipped.
    public init() {}

    /// With at most `maxBatch` offsets a commit.
    public func withMaxBatch(_ maxBatch: Int) -> Self { with { $0.maxBatch = maxBatch } }
    /// Committing at least every `maxInterval`.
    public func withMaxInterval(_ maxInterval: Duration) -> Self { with { $0.maxInterval = maxInterval } }
    /// With at most `parallelism` commits in flight.
    public func withParallelism(_ parallelism: Int) -> Self { with { $0.parallelism = parallelism } }
    /// With a different delivery mode.
    public func withDelivery(_ delivery: Delivery) -> Self { with { $0.delivery = delivery } }
    /// Committing offsets when they are first (or next) observed.
    public func withCommitWhen(_ when: When) -> Self { with { $0.when = when } }
    /// With different metrics settings (``KafkaMetricsSettings/disabled`` records none).
    public func withMetrics(_ metrics: KafkaMetricsSettings) -> Self { with { $0.metrics = metrics } }
    /// Skipping, or failing on, offsets of partitions no longer assigned.
    public func withNotAssignedOffsets(_ policy: NotAssignedOffsets) -> Self { with { $0.notAssignedOffsets = policy } }

    private func with(_ change: (inout Self) -> Void) -> Self {
        var copy = self
        change(&copy)
        return copy
    }

    /// Checks every field for range.
    public func validate() throws(KafkaError) {
        try check(maxBatch >= 1, "committer maxBatch must be at least 1, got \(maxBatch)")
        try check(maxInterval > .zero, "committer maxInterval must be positive, got \(maxInterval)")
        try check(parallelism >= 1, "committer parallelism must be at least 1, got \(parallelism)")
    }
}
