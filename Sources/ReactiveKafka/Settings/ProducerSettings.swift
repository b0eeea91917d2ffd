/// How a producer connects and how the connector's producer stages behave:
/// Alpakka's `ProducerSettings`.
///
/// librdkafka properties pass through unchanged; the connector's own knobs
/// are typed fields. Settings are checked when the producer starts: an unknown
/// property or a bad value fails the stream with a
/// ``KafkaError/Kind/invalidConfiguration`` error that quotes librdkafka.
public struct ProducerSettings<Key: Sendable, Value: Sendable>: Sendable {
    /// librdkafka properties (`bootstrap.servers`, `linger.ms`, `acks`, …).
    public var properties: [String: String]
    /// Turns each record's key into bytes.
    public var keySerializer: Serializer<Key>
    /// Turns each record's value into bytes.
    public var valueSerializer: Serializer<Value>
    /// How long closing waits for records still in flight to be delivered.
    public var closeTimeout: Duration = .seconds(60)
    /// The most messages a producer stage keeps in flight (sent, not yet acknowledged).
    /// Upstream is not pulled beyond it: that is the stage's back-pressure.
    public var parallelism: Int = 10_000
    /// How often a transactional stage commits its transaction.
    public var eosCommitInterval: Duration = .milliseconds(100)
    /// What the producer reports through swift-metrics: records and bytes sent, delivery
    /// latency and failures, queue depth (see ``MessagingMetric``). On by default.
    public var metrics: KafkaMetricsSettings = KafkaMetricsSettings()
    /// Whether producing writes the producing task's trace context into each record's headers
    /// (`traceparent`, and `tracestate` when present, with a W3C-propagating tracer), through
    /// the active instrument (`InstrumentationSystem.instrument`). On by default. With nothing to
    /// write (no instrument, or no `ServiceContext` in the task) it costs one task-local read per
    /// stage run or `send`, nothing per record.
    ///
    /// Whose context: ``KafkaProducer/send(_:)`` uses its caller's; a producer stage uses that
    /// of the task running the stream (the one that first pulls its output), read once per
    /// run. A record that carries a trace context of its own
    /// (``ProducerRecord/withTraceContext(_:)``) keeps it. Records with headers are handed to
    /// librdkafka one by one, not in batches: traced records cost more to produce.
    public var propagatesTraceContext: Bool = true

    /// Settings that serialise keys and values with the given serialisers.
    public init(keySerializer: Serializer<Key>, valueSerializer: Serializer<Value>, properties: [String: String] = [:])
    {
        self.keySerializer = keySerializer
        self.valueSerializer = valueSerializer
        self.properties = properties
    }

    /// With `servers` (`host:port[,host:port…]`) as the bootstrap brokers.
    public func withBootstrapServers(_ servers: String) -> Self { withProperty("bootstrap.servers", servers) }
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
    /// With a different close (flush) timeout.
    public func withCloseTimeout(_ timeout: Duration) -> Self { with { $0.closeTimeout = timeout } }
    /// With at most `parallelism` messages in flight per stage.
    public func withParallelism(_ parallelism: Int) -> Self { with { $0.parallelism = parallelism } }
    /// Committing transactions every `interval`.
    public func withEosCommitInterval(_ interval: Duration) -> Self { with { $0.eosCommitInterval = interval } }
    /// With trace context propagation into record headers on or off (see ``propagatesTraceContext``).
    public func withTraceContextPropagation(_ enabled: Bool) -> Self { with { $0.propagatesTraceContext = enabled } }

    /// With different metrics settings (``KafkaMetricsSettings/disabled`` records none).
    public func withMetrics(_ metrics: KafkaMetricsSettings) -> Self { with { $0.metrics = metrics } }

    private func with(_ change: (inout Self) -> Void) -> Self {
        var copy = self
        change(&copy)
        return copy
    }

    /// Checks every property with librdkafka, TLS files and PEM text (``KafkaSecurity/validate()``),
    /// and every typed field for range.
    public func validate() throws(KafkaError) {
        try KafkaClientConfiguration.validate(properties, client: "producer")
        try SecurityProperties.check(properties)
        try check(parallelism >= 1, "parallelism must be at least 1, got \(parallelism)")
        try check(closeTimeout >= .zero, "closeTimeout must not be negative, got \(closeTimeout)")
        try check(eosCommitInterval > .zero, "eosCommitInterval must be positive, got \(eosCommitInterval)")
    }
}

extension ProducerSettings where Key == KafkaBytes, Value == KafkaBytes {
    /// Settings that write keys and values as raw bytes.
    public init(properties: [String: String] = [:]) {
        self.init(keySerializer: .bytes, valueSerializer: .bytes, properties: properties)
    }
}
