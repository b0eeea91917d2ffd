import Configuration

extension ConsumerSettings {
    /// Settings read from `config`, Alpakka's `ConsumerSettings(system.settings.config.getConfig("akka.kafka.consumer"))`.
    ///
    /// Pass a reader scoped to the consumer's section, by convention
    /// `config.scoped(to: "reactive-kafka.consumer")`. Keys (all optional; a
    /// missing key keeps the default):
    ///
    /// | key | type | default |
    /// |---|---|---|
    /// | `close-timeout` | duration | 20s |
    /// | `stop-timeout` | duration | 30s |
    /// | `commit-timeout` | duration | 15s |
    /// | `commit-time-warning` | duration | 1s |
    /// | `max-buffered-bytes` | integer ≥ 1024 | 67108864 |
    /// | `max-batch-size` | integer ≥ 1 | 4096 |
    /// | `broker-unreachable-timeout` | duration or `off` (wait forever) | 60s |
    /// | `statistics-interval` | duration or `off` | off |
    /// | `rebalance-safe-commit-timeout` | duration or `off` | 15s |
    /// | `partition-handler-warning` | duration | 5s |
    /// | `metrics` | `on`, `per-topic` (no partition attribute) or `off` | on |
    /// | `offset-reset-protection.offset-threshold` | integer ≥ 0 | off |
    /// | `offset-reset-protection.time-threshold` | duration | off |
    /// | `kafka-clients.<property>` | librdkafka property, passed through | — |
    /// | `kafka-clients-keys` | list of extra property names to read | — |
    ///
    /// Durations are strings such as `"30s"`, `"500ms"`, `"2m"`, `"1.5h"`
    /// (units ns, us, ms, s, m, h, d), or whole milliseconds (`5000`), as in
    /// Alpakka's HOCON. With `EnvironmentVariablesProvider`, a key's components
    /// are upper-cased and joined by `_`, with every other character turned into `_`:
    /// `reactive-kafka.consumer.commit-timeout` is `REACTIVE_KAFKA_CONSUMER_COMMIT_TIMEOUT`,
    /// `reactive-kafka.consumer.kafka-clients.bootstrap.servers` is
    /// `REACTIVE_KAFKA_CONSUMER_KAFKA_CLIENTS_BOOTSTRAP_SERVERS`.
    ///
    /// - Throws: ``KafkaError/Kind/invalidConfiguration`` naming the full key
    ///   when a value cannot be read, and whatever ``validate()`` reports.
    public init(
        config: ConfigReader,
        keyDeserializer: Deserializer<Key>,
        valueDeserializer: Deserializer<Value>
    ) throws(KafkaError) {
        let reader = SettingsConfigReader(config)
        self.init(
            keyDeserializer: keyDeserializer, valueDeserializer: valueDeserializer, properties: reader.kafkaClients())
        if let value = try reader.duration("close-timeout") { closeTimeout = value }
        if let value = try reader.duration("stop-timeout") { stopTimeout = value }
        if let value = try reader.duration("commit-timeout", positive: true) { commitTimeout = value }
        if let value = try reader.duration("commit-time-warning") { commitTimeWarning = value }
        if let value = try reader.int("max-buffered-bytes", minimum: 1024) { maxBufferedBytes = value }
        if let value = try reader.int("max-batch-size", minimum: 1) { maxBatchSize = value }
        if let value = try reader.optionalDuration("broker-unreachable-timeout", offMeans: "to wait forever") {
            brokerUnreachableTimeout = value
        }
        if let value = try reader.optionalDuration("statistics-interval", offMeans: "to disable statistics") {
            statisticsInterval = value
        }
        if let value = try reader.optionalDuration(
            "rebalance-safe-commit-timeout", offMeans: "to let revoked partitions go at once")
        {
            rebalanceSafeCommitTimeout = value
        }
        if let value = try reader.duration("partition-handler-warning", positive: true) {
            partitionHandlerWarning = value
        }
        if let value = try reader.metrics() { metrics = value }
        let offsetThreshold = try reader.int("offset-reset-protection.offset-threshold", minimum: 0)
        let timeThreshold = try reader.duration("offset-reset-protection.time-threshold")
        if offsetThreshold != nil || timeThreshold != nil {
            offsetResetProtection = OffsetResetProtection(
                offsetThreshold: offsetThreshold.map(Int64.init), timeThreshold: timeThreshold)
        }
        let loaded = self
        try reader.validated { () throws(KafkaError) in try loaded.validate() }
    }
}

extension ConsumerSettings where Key == KafkaBytes, Value == KafkaBytes {
    /// Settings read from `config` (see ``init(config:keyDeserializer:valueDeserializer:)``)
    /// that hand out keys and values as raw bytes.
    public init(config: ConfigReader) throws(KafkaError) {
        try self.init(config: config, keyDeserializer: .bytes, valueDeserializer: .bytes)
    }
}
