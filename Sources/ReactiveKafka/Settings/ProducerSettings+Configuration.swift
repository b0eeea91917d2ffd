import Configuration

extension ProducerSettings {
    /// Settings read from `config`, Alpakka's `ProducerSettings(system.settings.config.getConfig("akka.kafka.producer"))`.
    ///
    /// Pass a reader scoped to the producer's section, by convention
    /// `config.scoped(to: "reactive-kafka.producer")`. Keys (all optional; a
    /// missing key keeps the default):
    ///
    /// | key | type | default |
    /// |---|---|---|
    /// | `close-timeout` | duration | 60s |
    /// | `parallelism` | integer ≥ 1 | 10000 |
    /// | `eos-commit-interval` | duration > 0 | 100ms |
    /// | `metrics` | `on`, `per-topic` or `off` | on |
    /// | `propagate-trace-context` | boolean | true |
    /// | `kafka-clients.<property>` | librdkafka property, passed through | — |
    /// | `kafka-clients-keys` | list of extra property names to read | — |
    ///
    /// Durations and environment-variable names follow the rules in
    /// ``ConsumerSettings/init(config:keyDeserializer:valueDeserializer:)``.
    ///
    /// - Throws: ``KafkaError/Kind/invalidConfiguration`` naming the full key
    ///   when a value cannot be read, and whatever ``validate()`` reports.
    public init(
        config: ConfigReader,
        keySerializer: Serializer<Key>,
        valueSerializer: Serializer<Value>
    ) throws(KafkaError) {
        let reader = SettingsConfigReader(config)
        self.init(keySerializer: keySerializer, valueSerializer: valueSerializer, properties: reader.kafkaClients())
        if let value = try reader.duration("close-timeout") { closeTimeout = value }
        if let value = try reader.int("parallelism", minimum: 1) { parallelism = value }
        if let value = try reader.duration("eos-commit-interval", positive: true) { eosCommitInterval = value }
        if let value = try reader.metrics() { metrics = value }
        if let value = try reader.bool("propagate-trace-context") { propagatesTraceContext = value }
        let loaded = self
        try reader.validated { () throws(KafkaError) in try loaded.validate() }
    }
}

extension ProducerSettings where Key == KafkaBytes, Value == KafkaBytes {
    /// Settings read from `config` (see ``init(config:keySerializer:valueSerializer:)``)
    /// that write keys and values as raw bytes.
    public init(config: ConfigReader) throws(KafkaError) {
        try self.init(config: config, keySerializer: .bytes, valueSerializer: .bytes)
    }
}
