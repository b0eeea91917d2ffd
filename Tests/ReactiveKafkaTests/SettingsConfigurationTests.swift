import Configuration
import Foundation
import Testing

@testable import ReactiveKafka

/// Settings loaded from swift-configuration: every provider kind, the key
/// mapping users rely on, defaults for missing keys, and typed errors naming the key.
@Suite struct SettingsConfigurationTests {
    // MARK: Durations

    @Test(arguments: [
        ("30s", Duration.seconds(30)),
        ("500ms", .milliseconds(500)),
        ("2m", .seconds(120)),
        ("1.5h", .seconds(5400)),
        ("0.1s", .milliseconds(100)),
        (" 5 s ", .seconds(5)),
        ("5000", .milliseconds(5000)),
        ("10 minutes", .seconds(600)),
        ("1d", .seconds(86_400)),
        ("250us", .microseconds(250)),
        ("7ns", .nanoseconds(7)),
        ("3 Seconds", .seconds(3)),
        ("0", .zero),
    ])
    func durationsParse(text: String, expected: Duration) throws {
        #expect(try ConfigDurationParser.parse(text) == expected)
    }

    @Test(arguments: [
        ("5 parsecs", ConfigDurationError.notADuration),
        ("", .notADuration),
        ("s", .notADuration),
        ("thirty seconds", .notADuration),
        ("1e3s", .notADuration),
        ("1.2.3s", .notADuration),
        ("-1s", .negative),
        ("999999999999d", .tooLarge),
        ("123456789012345678901234567890ms", .tooLarge),
        ("99999999999999999999.999999999999999999d", .tooLarge),
    ])
    func badDurationsAreTypedErrors(text: String, expected: ConfigDurationError) {
        #expect(throws: expected) { try ConfigDurationParser.parse(text) }
    }

    // MARK: Providers

    @Test func consumerFromInMemoryProvider() throws {
        let config = ConfigReader(
            provider: InMemoryProvider(values: [
                "reactive-kafka.consumer.close-timeout": "5s",
                "reactive-kafka.consumer.stop-timeout": 2500, // integer milliseconds
                "reactive-kafka.consumer.commit-timeout": "10s",
                "reactive-kafka.consumer.commit-time-warning": "250ms",
                "reactive-kafka.consumer.max-buffered-bytes": 1_048_576,
                "reactive-kafka.consumer.max-batch-size": "512",
                "reactive-kafka.consumer.broker-unreachable-timeout": "off",
                "reactive-kafka.consumer.statistics-interval": "1m",
                "reactive-kafka.consumer.kafka-clients.bootstrap.servers": "localhost:9092",
                "reactive-kafka.consumer.kafka-clients.group.id": "orders",
                "reactive-kafka.consumer.kafka-clients.enable.auto.commit": false,
                "reactive-kafka.consumer.kafka-clients.fetch.min.bytes": 10,
                // Another section: must not leak in.
                "reactive-kafka.producer.kafka-clients.linger.ms": 5,
            ]))
        let settings = try ConsumerSettings(config: config.scoped(to: "reactive-kafka.consumer"))
        #expect(settings.closeTimeout == .seconds(5))
        #expect(settings.stopTimeout == .milliseconds(2500))
        #expect(settings.commitTimeout == .seconds(10))
        #expect(settings.commitTimeWarning == .milliseconds(250))
        #expect(settings.maxBufferedBytes == 1_048_576)
        #expect(settings.maxBatchSize == 512)
        #expect(settings.brokerUnreachableTimeout == nil)
        #expect(settings.statisticsInterval == .seconds(60))
        #expect(
            settings.properties == [
                "bootstrap.servers": "localhost:9092", "group.id": "orders",
                "enable.auto.commit": "false", "fetch.min.bytes": "10",
            ])
        #expect(settings.groupId == "orders")
    }

    @Test func metricsAreOnPerTopicOrOffFromConfiguration() throws {
        func consumer(_ value: String?) throws(KafkaError) -> KafkaMetricsSettings {
            let values: [AbsoluteConfigKey: ConfigValue] =
                value.map { ["c.metrics": .init(.string($0), isSecret: false)] } ?? [:]
            return try ConsumerSettings(
                config: ConfigReader(provider: InMemoryProvider(values: values)).scoped(to: "c")
            ).metrics
        }
        #expect(try consumer(nil) == KafkaMetricsSettings())
        #expect(try consumer("on") == KafkaMetricsSettings())
        #expect(try consumer("off").enabled == false)
        #expect(try consumer("per-topic").perPartitionLabels == false)
        #expect(try consumer("per-topic").enabled)
        let producer = try ProducerSettings(
            config: ConfigReader(provider: InMemoryProvider(values: ["p.metrics": "OFF"])).scoped(to: "p"))
        #expect(producer.metrics.enabled == false)
        #expect(throws: KafkaError.self) { try consumer("sometimes") }
    }

    @Test func missingKeysKeepTheDefaults() throws {
        let config = ConfigReader(provider: InMemoryProvider(values: [:]))
        let consumer = try ConsumerSettings(config: config.scoped(to: "reactive-kafka.consumer"))
        let defaults = ConsumerSettings()
        #expect(consumer.properties.isEmpty)
        #expect(consumer.closeTimeout == defaults.closeTimeout)
        #expect(consumer.stopTimeout == defaults.stopTimeout)
        #expect(consumer.commitTimeout == defaults.commitTimeout)
        #expect(consumer.commitTimeWarning == defaults.commitTimeWarning)
        #expect(consumer.maxBufferedBytes == defaults.maxBufferedBytes)
        #expect(consumer.maxBatchSize == defaults.maxBatchSize)
        #expect(consumer.brokerUnreachableTimeout == defaults.brokerUnreachableTimeout)
        #expect(consumer.statisticsInterval == defaults.statisticsInterval)

        let producer = try ProducerSettings(config: config.scoped(to: "reactive-kafka.producer"))
        #expect(producer.properties.isEmpty)
        #expect(producer.closeTimeout == ProducerSettings().closeTimeout)
        #expect(producer.parallelism == ProducerSettings().parallelism)
        #expect(producer.eosCommitInterval == ProducerSettings().eosCommitInterval)

        #expect(try CommitterSettings(config: config.scoped(to: "reactive-kafka.committer")) == CommitterSettings())
    }

    @Test func allThreeFromAJSONFile() async throws {
        let json = """
            {
              "reactive-kafka": {
                "consumer": {
                  "commit-timeout": "20s",
                  "max-batch-size": 100,
                  "broker-unreachable-timeout": 45000,
                  "kafka-clients": {
                    "bootstrap.servers": "broker-1:9092,broker-2:9092",
                    "group.id": "billing",
                    "auto.offset.reset": "earliest",
                    "enable.auto.commit": false,
                    "session.timeout.ms": 6000
                  }
                },
                "producer": {
                  "close-timeout": "2m",
                  "parallelism": 500,
                  "eos-commit-interval": "250ms",
                  "kafka-clients": { "bootstrap.servers": "broker-1:9092", "linger.ms": 5, "acks": "all" }
                },
                "committer": {
                  "max-batch": 50,
                  "max-interval": "2s",
                  "parallelism": 3,
                  "delivery": "SendAndForget",
                  "when": "NextOffsetObserved"
                }
              }
            }
            """
        try await withTemporaryFile(named: "app.json", contents: json) { path in
            let config = ConfigReader(provider: try await FileProvider<JSONSnapshot>(filePath: .init(path)))
            try checkLoadedFromFile(config)
        }
    }

    @Test func allThreeFromAYAMLFile() async throws {
        let yaml = """
            reactive-kafka:
              consumer:
                commit-timeout: 20s
                max-batch-size: 100
                broker-unreachable-timeout: 45000
                kafka-clients:
                  bootstrap.servers: broker-1:9092,broker-2:9092
                  group.id: billing
                  auto.offset.reset: earliest
                  enable.auto.commit: false
                  session.timeout.ms: 6000
              producer:
                close-timeout: 2m
                parallelism: 500
                eos-commit-interval: 250ms
                kafka-clients:
                  bootstrap.servers: broker-1:9092
                  linger.ms: 5
                  acks: all
              committer:
                max-batch: 50
                max-interval: 2s
                parallelism: 3
                delivery: SendAndForget
                when: NextOffsetObserved
            """
        try await withTemporaryFile(named: "app.yaml", contents: yaml) { path in
            let config = ConfigReader(provider: try await FileProvider<YAMLSnapshot>(filePath: .init(path)))
            try checkLoadedFromFile(config)
        }
    }

    /// The JSON and YAML files above describe the same settings.
    private func checkLoadedFromFile(_ config: ConfigReader) throws {
        let consumer = try ConsumerSettings(config: config.scoped(to: "reactive-kafka.consumer"))
        #expect(consumer.commitTimeout == .seconds(20))
        #expect(consumer.maxBatchSize == 100)
        #expect(consumer.brokerUnreachableTimeout == .seconds(45))
        #expect(consumer.closeTimeout == ConsumerSettings().closeTimeout)
        #expect(consumer.properties["bootstrap.servers"] == "broker-1:9092,broker-2:9092")
        #expect(consumer.properties["group.id"] == "billing")
        #expect(consumer.properties["auto.offset.reset"] == "earliest")
        #expect(consumer.properties["session.timeout.ms"] == "6000")
        // JSON's `false` arrives as 0, YAML's as text; librdkafka accepts both (validate() ran).
        #expect(["false", "0"].contains(consumer.properties["enable.auto.commit"]))
        #expect(consumer.properties.count == 5)

        let producer = try ProducerSettings(config: config.scoped(to: "reactive-kafka.producer"))
        #expect(producer.closeTimeout == .seconds(120))
        #expect(producer.parallelism == 500)
        #expect(producer.eosCommitInterval == .milliseconds(250))
        #expect(producer.properties == ["bootstrap.servers": "broker-1:9092", "linger.ms": "5", "acks": "all"])

        let committer = try CommitterSettings(config: config.scoped(to: "reactive-kafka.committer"))
        #expect(
            committer
                == CommitterSettings().withMaxBatch(50).withMaxInterval(.seconds(2)).withParallelism(3)
                .withDelivery(.sendAndForget).withCommitWhen(.nextOffsetObserved))
    }

    @Test func fromEnvironmentVariables() throws {
        let environment = EnvironmentVariablesProvider(environmentVariables: [
            "REACTIVE_KAFKA_CONSUMER_COMMIT_TIMEOUT": "5s",
            "REACTIVE_KAFKA_CONSUMER_MAX_BUFFERED_BYTES": "2097152",
            "REACTIVE_KAFKA_CONSUMER_STATISTICS_INTERVAL": "30s",
            "REACTIVE_KAFKA_CONSUMER_BROKER_UNREACHABLE_TIMEOUT": "OFF",
            "REACTIVE_KAFKA_CONSUMER_KAFKA_CLIENTS_BOOTSTRAP_SERVERS": "kafka:9092",
            "REACTIVE_KAFKA_CONSUMER_KAFKA_CLIENTS_GROUP_ID": "env-group",
            "REACTIVE_KAFKA_CONSUMER_KAFKA_CLIENTS_ENABLE_AUTO_COMMIT": "false",
            "REACTIVE_KAFKA_PRODUCER_PARALLELISM": "64",
            "REACTIVE_KAFKA_PRODUCER_KAFKA_CLIENTS_ENABLE_IDEMPOTENCE": "true",
            "REACTIVE_KAFKA_COMMITTER_DELIVERY": "send-and-forget",
            "REACTIVE_KAFKA_COMMITTER_WHEN": "NEXT_OFFSET_OBSERVED",
            "REACTIVE_KAFKA_COMMITTER_MAX_INTERVAL": "500",
            "UNRELATED": "x",
        ])
        let config = ConfigReader(provider: environment)

        let consumer = try ConsumerSettings(config: config.scoped(to: "reactive-kafka.consumer"))
        #expect(consumer.commitTimeout == .seconds(5))
        #expect(consumer.maxBufferedBytes == 2_097_152)
        #expect(consumer.statisticsInterval == .seconds(30))
        #expect(consumer.brokerUnreachableTimeout == nil)
        #expect(
            consumer.properties == [
                "bootstrap.servers": "kafka:9092", "group.id": "env-group", "enable.auto.commit": "false",
            ])

        let producer = try ProducerSettings(config: config.scoped(to: "reactive-kafka.producer"))
        #expect(producer.parallelism == 64)
        #expect(producer.properties == ["enable.idempotence": "true"])

        let committer = try CommitterSettings(config: config.scoped(to: "reactive-kafka.committer"))
        #expect(committer.delivery == .sendAndForget)
        #expect(committer.when == .nextOffsetObserved)
        #expect(committer.maxInterval == .milliseconds(500))
    }

    @Test func environmentOverridesAFileWhenListedFirst() throws {
        let config = ConfigReader(providers: [
            EnvironmentVariablesProvider(environmentVariables: ["REACTIVE_KAFKA_CONSUMER_COMMIT_TIMEOUT": "7s"]),
            InMemoryProvider(values: [
                "reactive-kafka.consumer.commit-timeout": "30s",
                "reactive-kafka.consumer.max-batch-size": 8,
            ]),
        ])
        let settings = try ConsumerSettings(config: config.scoped(to: "reactive-kafka.consumer"))
        #expect(settings.commitTimeout == .seconds(7))
        #expect(settings.maxBatchSize == 8)
    }

    // MARK: kafka-clients

    @Test func kafkaClientsKeysReadsNamesLibrdkafkaDoesNotList() {
        let config = ConfigReader(
            provider: EnvironmentVariablesProvider(environmentVariables: [
                "REACTIVE_KAFKA_CONSUMER_KAFKA_CLIENTS_KEYS": "custom.plugin.setting, bootstrap.servers",
                "REACTIVE_KAFKA_CONSUMER_KAFKA_CLIENTS_CUSTOM_PLUGIN_SETTING": "on",
                "REACTIVE_KAFKA_CONSUMER_KAFKA_CLIENTS_BOOTSTRAP_SERVERS": "kafka:9092",
            ]))
        let reader = SettingsConfigReader(config.scoped(to: "reactive-kafka.consumer"))
        #expect(reader.kafkaClients() == ["custom.plugin.setting": "on", "bootstrap.servers": "kafka:9092"])

        // The loaded settings still go through librdkafka's check, which names the property and the section.
        #expect {
            try ConsumerSettings(config: config.scoped(to: "reactive-kafka.consumer"))
        } throws: { error in
            let e = error as! KafkaError
            return e.kind == .invalidConfiguration && e.message.contains("custom.plugin.setting")
                && e.message.contains("configuration under reactive-kafka.consumer")
        }
    }

    @Test func kafkaClientsKeysAsAJSONList() async throws {
        let json = """
            {"producer": {"kafka-clients-keys": ["x.y"], "kafka-clients": {"x.y": "1", "client.id": "svc"}}}
            """
        try await withTemporaryFile(named: "keys.json", contents: json) { path in
            let config = ConfigReader(provider: try await FileProvider<JSONSnapshot>(filePath: .init(path)))
            let reader = SettingsConfigReader(config.scoped(to: "producer"))
            #expect(reader.kafkaClients() == ["x.y": "1", "client.id": "svc"])
        }
    }

    @Test func librdkafkasPropertyTableIsRead() {
        let names = Set(KafkaClientPropertyNames.all)
        #expect(names.count > 150)
        for name in [
            "bootstrap.servers", "group.id", "client.id", "auto.offset.reset", "enable.auto.commit", "acks",
            "linger.ms", "transactional.id", "isolation.level", "sasl.username", "ssl.ca.location",
            "partition.assignment.strategy", "message.timeout.ms",
        ] {
            #expect(names.contains(name), "\(name) missing from librdkafka's property table")
        }
        #expect(!names.contains("Property"))
    }

    @Test func badLibrdkafkaValueFailsWithLibrdkafkasReason() {
        let config = ConfigReader(
            provider: InMemoryProvider(values: ["reactive-kafka.producer.kafka-clients.acks": "sometimes"]))
        #expect {
            try ProducerSettings(config: config.scoped(to: "reactive-kafka.producer"))
        } throws: { error in
            let e = error as! KafkaError
            return e.kind == .invalidConfiguration && e.message.contains("\"acks\"=\"sometimes\"")
                && e.message.contains("configuration under reactive-kafka.producer")
        }
    }

    // MARK: Errors

    @Test func badDurationNamesTheFullKey() {
        let config = ConfigReader(
            provider: InMemoryProvider(values: ["reactive-kafka.consumer.commit-timeout": "5 parsecs"]))
        #expect(
            throws: KafkaError(
                .invalidConfiguration,
                "reactive-kafka.consumer.commit-timeout: \"5 parsecs\" is not a duration; use e.g. 30s, 500ms or 2m")
        ) {
            try ConsumerSettings(config: config.scoped(to: "reactive-kafka.consumer"))
        }
    }

    /// (key under reactive-kafka.consumer, value, what the message must say)
    static let badConsumerValues: [(String, ConfigValue, String)] = [
        ("stop-timeout", "-3s", "is negative"),
        ("commit-timeout", "0s", "must be greater than zero"),
        ("commit-timeout", "off", "is not a duration"),
        ("commit-time-warning", 1.5, "is not a duration"),
        ("broker-unreachable-timeout", "soon", "or off to wait forever"),
        ("statistics-interval", "0", "or off to disable statistics"),
        ("max-batch-size", "many", "is not a whole number"),
        ("max-batch-size", 0, "must be at least 1"),
        ("max-buffered-bytes", "1MB", "is not a whole number"),
        ("max-buffered-bytes", 100, "must be at least 1024"),
    ]

    @Test(arguments: badConsumerValues)
    func badConsumerValuesNameTheKey(key: String, value: ConfigValue, says: String) {
        let config = ConfigReader(
            provider: InMemoryProvider(values: [AbsoluteConfigKey(["reactive-kafka", "consumer", key]): value]))
        #expect {
            try ConsumerSettings(config: config.scoped(to: "reactive-kafka.consumer"))
        } throws: { error in
            let e = error as! KafkaError
            return e.kind == .invalidConfiguration && e.message.hasPrefix("reactive-kafka.consumer.\(key): ")
                && e.message.contains(says)
        }
    }

    @Test func badEnumNamesTheKeyAndTheChoices() {
        let config = ConfigReader(
            provider: EnvironmentVariablesProvider(environmentVariables: ["REACTIVE_KAFKA_COMMITTER_DELIVERY": "maybe"])
        )
        #expect(
            throws: KafkaError(
                .invalidConfiguration,
                "reactive-kafka.committer.delivery: \"maybe\" is not one of WaitForAck or SendAndForget")
        ) {
            try CommitterSettings(config: config.scoped(to: "reactive-kafka.committer"))
        }
    }

    @Test func badProducerNumberNamesTheKey() {
        let config = ConfigReader(
            provider: InMemoryProvider(values: ["reactive-kafka.producer.parallelism": "ten"]))
        #expect(
            throws: KafkaError(
                .invalidConfiguration, "reactive-kafka.producer.parallelism: \"ten\" is not a whole number")
        ) {
            try ProducerSettings(config: config.scoped(to: "reactive-kafka.producer"))
        }
    }

    @Test func unscopedReaderNamesTheRelativeKey() {
        let config = ConfigReader(provider: InMemoryProvider(values: ["max-batch": "lots"]))
        #expect(throws: KafkaError(.invalidConfiguration, "max-batch: \"lots\" is not a whole number")) {
            try CommitterSettings(config: config)
        }
    }

    @Test func keyPrefixIsRecoveredFromTheReader() {
        let root = ConfigReader(provider: InMemoryProvider(values: [:]))
        #expect(SettingsConfigReader.keyPrefix(of: root) == nil)
        #expect(
            SettingsConfigReader.keyPrefix(of: root.scoped(to: "reactive-kafka.consumer")) == "reactive-kafka.consumer")
        #expect(SettingsConfigReader.keyPrefix(of: root.scoped(to: "a").scoped(to: "b")) == "a.b")
    }
}

/// Writes `contents` to a fresh temporary directory for the duration of `body`.
private func withTemporaryFile(
    named name: String, contents: String, _ body: (String) async throws -> Void
) async throws {
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("reactive-kafka-config-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let file = directory.appendingPathComponent(name)
    try contents.write(to: file, atomically: true, encoding: .utf8)
    try await body(file.path)
}
