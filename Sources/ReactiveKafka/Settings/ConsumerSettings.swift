/// How a consumer connects, what it reads, and how the connector behaves:
/// Alpakka's `ConsumerSettings`.
///
/// librdkafka properties pass through unchanged (``withProperty(_:_:)``);
/// the connector's own knobs are typed fields. Settings are checked when a
/// consumer starts: an unknown property or a bad value fails the stream with
/// a ``KafkaError/Kind/invalidConfiguration`` error that quotes librdkafka.
public struct ConsumerSettings<Key: Sendable, Value: Sendable>: Sendable {
    /// librdkafka properties (`bootstrap.servers`, `group.id`, `auto.offset.reset`, …).
    public var properties: [String: String]
    /// Turns each record's key bytes into a `Key`.
    public var keyDeserializer: Deserializer<Key>
    /// Turns each record's value bytes into a `Value`.
    public var valueDeserializer: Deserializer<Value>
    /// How long closing the consumer (leaving the group) may take.
    public var closeTimeout: Duration = .seconds(20)
    /// How long ``ConsumerControl/stop()`` waits before the consumer may be closed.
    /// A draining control waits for the stream instead.
    public var stopTimeout: Duration = .seconds(30)
    /// How long a commit may take before it fails with ``KafkaError/Kind/commitTimeout``.
    public var commitTimeout: Duration = .seconds(15)
    /// A commit slower than this is logged as a warning.
    public var commitTimeWarning: Duration = .seconds(1)
    /// The most record bytes the consumer buffers ahead of its streams, over all
    /// partitions. When reached, partitions are paused until the streams catch up.
    /// librdkafka's own prefetch (`queued.max.messages.kbytes`) is set to match
    /// unless you set it yourself.
    public var maxBufferedBytes: Int = 64 * 1024 * 1024
    /// The most records taken from librdkafka, and handed to a stream, in one batch.
    public var maxBatchSize: Int = 4096
    /// When no broker has been reachable for this long, the stream fails with
    /// ``KafkaError/Kind/brokerUnreachable``; `nil` keeps retrying forever.
    public var brokerUnreachableTimeout: Duration? = .seconds(60)
    /// How often librdkafka statistics are collected for ``ConsumerControl/metrics``; `nil` disables them.
    public var statisticsInterval: Duration? = nil
    /// Rebalance-safe commits (committable sources): when partitions are
    /// revoked in a graceful rebalance, the consumer waits at most this long,
    /// before letting them go, until every record already emitted for them is
    /// committed; committers are asked to commit at once meanwhile. So the
    /// next owner starts exactly after the last processed record: no
    /// duplicates. The whole group waits for the rebalance meanwhile, so keep
    /// it well under `max.poll.interval.ms`. `nil` lets partitions go at once.
    public var rebalanceSafeCommitTimeout: Duration? = .seconds(15)
    /// A ``PartitionAssignmentHandler`` call slower than this is logged as a warning.
    public var partitionHandlerWarning: Duration = .seconds(5)
    /// Seeks back instead of reprocessing when a partition jumps back past its committed offset; `nil` is off.
    public var offsetResetProtection: OffsetResetProtection? = nil
    /// What the consumer reports through swift-metrics: consumed records and bytes, lag,
    /// buffer, commits, rebalances (see ``MessagingMetric``). On by default.
    public var metrics: KafkaMetricsSettings = KafkaMetricsSettings()
    /// When records wait for the stream and it takes none for this long, the consumer's
    /// ``ConsumerControl/health`` is ``ConsumerHealth/stalled`` (a liveness probe fails).
    public var stallThreshold: Duration = .seconds(60)

    /// Settings that deserialise keys and values with the given deserialisers.
    public init(
        keyDeserializer: Deserializer<Key>, valueDeserializer: Deserializer<Value>, properties: [String: String] = [:]
    ) {
        self.keyDeserializer = keyDeserializer
        self.valueDeserializer = valueDeserializer
        self.properties = properties
    }

    /// The consumer group, if any.
    public var groupId: String? { properties["group.id"] }

    /// With `servers` (`host:port[,host:port…]`) as the bootstrap brokers.
    public func withBootstrapServers(_ servers: String) -> Self { withProperty("bootstrap.servers", servers) }
    /// In consumer group `groupId`.
    public func withGroupId(_ groupId: String) -> Self { withProperty("group.id", groupId) }
    /// Identified to brokers as `clientId`.
    public func withClientId(_ clientId: String) -> Self { withProperty("client.id", clientId) }
    /// With the librdkafka property `key` set to `value`.
    public func withProperty(_ key: String, _ value: String) -> Self {
        var copy = self
        copy.properties[key] = value
        return copy
    }
    /// With every librdkafka property in `properties` set.
    public func withProperties(_ properties: [String: String]) -> Self {
        var copy = self
        copy.properties.merge(properties) { _, new in new }
        return copy
    }
    /// With a different close timeout.
    public func withCloseTimeout(_ timeout: Duration) -> Self { with { $0.closeTimeout = timeout } }
    /// With a different stop timeout.
    public func withStopTimeout(_ timeout: Duration) -> Self { with { $0.stopTimeout = timeout } }
    /// With a different commit timeout.
    public func withCommitTimeout(_ timeout: Duration) -> Self { with { $0.commitTimeout = timeout } }
    /// With a different threshold for slow-commit warnings.
    public func withCommitTimeWarning(_ threshold: Duration) -> Self { with { $0.commitTimeWarning = threshold } }
    /// With a different buffer budget.
    public func withMaxBufferedBytes(_ bytes: Int) -> Self { with { $0.maxBufferedBytes = bytes } }
    /// With a different batch size.
    public func withMaxBatchSize(_ records: Int) -> Self { with { $0.maxBatchSize = records } }
    /// With a different tolerance for an unreachable cluster (`nil`: wait forever).
    public func withBrokerUnreachableTimeout(_ timeout: Duration?) -> Self {
        with { $0.brokerUnreachableTimeout = timeout }
    }
    /// Collecting librdkafka statistics every `interval` (`nil` disables).
    public func withStatisticsInterval(_ interval: Duration?) -> Self { with { $0.statisticsInterval = interval } }
    /// With rebalance-safe commits waiting at most `timeout` (`nil` turns them off).
    public func withRebalanceSafeCommitTimeout(_ timeout: Duration?) -> Self {
        with { $0.rebalanceSafeCommitTimeout = timeout }
    }
    /// With offset reset protection (`nil` turns it off).
    public func withOffsetResetProtection(_ protection: OffsetResetProtection?) -> Self {
        with { $0.offsetResetProtection = protection }
    }
    /// With different metrics settings (``KafkaMetricsSettings/disabled`` records none).
    public func withMetrics(_ metrics: KafkaMetricsSettings) -> Self { with { $0.metrics = metrics } }
    /// Reporting ``ConsumerHealth/stalled`` after `threshold` without progress while records wait.
    public func withStallThreshold(_ threshold: Duration) -> Self { with { $0.stallThreshold = threshold } }
    /// Warning when a partition assignment handler call takes longer than `threshold`.
    public func withPartitionHandlerWarning(_ threshold: Duration) -> Self {
        with { $0.partitionHandlerWarning = threshold }
    }

    private func with(_ change: (inout Self) -> Void) -> Self {
        var copy = self
        change(&copy)
        return copy
    }

    /// Checks every property with librdkafka, TLS files and PEM text (``KafkaSecurity/validate()``),
    /// and every typed field for range.
    public func validate() throws(KafkaError) {
        try KafkaClientConfiguration.validate(properties, client: "consumer")
        try SecurityProperties.check(properties)
        try check(maxBufferedBytes >= 1024, "maxBufferedBytes must be at least 1024 bytes, got \(maxBufferedBytes)")
        try check(maxBatchSize >= 1, "maxBatchSize must be at least 1, got \(maxBatchSize)")
        try check(commitTimeout > .zero, "commitTimeout must be positive, got \(commitTimeout)")
        try check(closeTimeout >= .zero, "closeTimeout must not be negative, got \(closeTimeout)")
        try check(stopTimeout >= .zero, "stopTimeout must not be negative, got \(stopTimeout)")
        if let rebalanceSafeCommitTimeout {
            try check(
                rebalanceSafeCommitTimeout > .zero,
                "rebalanceSafeCommitTimeout must be positive or nil (off), got \(rebalanceSafeCommitTimeout)")
        }
        try offsetResetProtection?.validate()
        try check(stallThreshold > .zero, "stallThreshold must be positive, got \(stallThreshold)")
        try check(
            partitionHandlerWarning > .zero, "partitionHandlerWarning must be positive, got \(partitionHandlerWarning)")
        if let brokerUnreachableTimeout {
            try check(
                brokerUnreachableTimeout > .zero,
                "brokerUnreachableTimeout must be positive or nil, got \(brokerUnreachableTimeout)")
        }
    }
}

extension ConsumerSettings where Key == KafkaBytes, Value == KafkaBytes {
    /// Settings that hand out keys and values as raw bytes, without copying.
    public init(properties: [String: String] = [:]) {
        self.init(keyDeserializer: .bytes, valueDeserializer: .bytes, properties: properties)
    }
}

func check(_ condition: Bool, _ message: @autoclosure () -> String) throws(KafkaError) {
    if !condition { throw KafkaError(.invalidConfiguration, message()) }
}
