import Configuration

extension CommitterSettings {
    /// Settings read from `config`, Alpakka's `CommitterSettings(system.settings.config.getConfig("akka.kafka.committer"))`.
    ///
    /// Pass a reader scoped to the committer's section, by convention
    /// `config.scoped(to: "reactive-kafka.committer")`. Keys (all optional; a
    /// missing key keeps the default):
    ///
    /// | key | type | default |
    /// |---|---|---|
    /// | `max-batch` | integer ≥ 1 | 1000 |
    /// | `max-interval` | duration > 0 | 10s |
    /// | `parallelism` | integer ≥ 1 | 100 |
    /// | `delivery` | `WaitForAck` or `SendAndForget` | WaitForAck |
    /// | `when` | `OffsetFirstObserved` or `NextOffsetObserved` | OffsetFirstObserved |
    /// | `not-assigned-offsets` | `Skip` or `Fail` | Skip |
    ///
    /// Names of choices match ignoring case, `-` and `_` (`wait-for-ack`,
    /// `WAIT_FOR_ACK`). Durations and environment-variable names follow the rules in
    /// ``ConsumerSettings/init(config:keyDeserializer:valueDeserializer:)``.
    ///
    /// - Throws: ``KafkaError/Kind/invalidConfiguration`` naming the full key
    ///   when a value cannot be read.
    public init(config: ConfigReader) throws(KafkaError) {
        let reader = SettingsConfigReader(config)
        self.init()
        if let value = try reader.int("max-batch", minimum: 1) { maxBatch = value }
        if let value = try reader.duration("max-interval", positive: true) { maxInterval = value }
        if let value = try reader.int("parallelism", minimum: 1) { parallelism = value }
        if let value = try reader.choice(
            "delivery", ["WaitForAck": Delivery.waitForAck, "SendAndForget": .sendAndForget])
        {
            delivery = value
        }
        if let value = try reader.choice(
            "when", ["OffsetFirstObserved": When.offsetFirstObserved, "NextOffsetObserved": .nextOffsetObserved])
        {
            when = value
        }
        if let value = try reader.choice("not-assigned-offsets", ["Skip": NotAssignedOffsets.skip, "Fail": .fail]) {
            notAssignedOffsets = value
        }
        let loaded = self
        try reader.validated { () throws(KafkaError) in try loaded.validate() }
    }
}
