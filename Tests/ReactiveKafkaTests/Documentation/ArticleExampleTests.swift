import Configuration
import Foundation
import Logging
import ReactiveKafka
import ReactiveKafkaTestKit
import ServiceLifecycle
import StreamKit
import Testing

// Code the DocC articles show that the README does not: each block below is compiled here and
// must appear verbatim in its article, so the articles cannot drift from the API. The README's
// own examples (which several articles repeat) are checked by the Readme tests.

/// What the snippets' application code calls.
private func business(_ key: String, _ value: String) async throws {}
private func process(_ value: String) async throws {}
private struct OffsetStore: Sendable {
    func offsets(for partitions: Set<TopicPartition>) -> [TopicPartition: Int64] { [:] }
}

@Suite struct ArticleExampleTests {
    static let catalogues = ReadmeBlocks.root.appendingPathComponent("Sources")

    /// Article (relative to Sources/) → the markers of the blocks it must show verbatim.
    static let shown: [String: [String]] = [
        "ReactiveKafka/ReactiveKafka.docc/Producing.md": ["kafka producer"],
        "ReactiveKafka/ReactiveKafka.docc/ExactlyOnce.md": ["transactional producer"],
        "ReactiveKafka/ReactiveKafka.docc/ConfigurationReference.md": ["config reader"],
        "ReactiveKafka/ReactiveKafka.docc/CommittingAndDeliveryGuarantees.md": ["at least once"],
        "ReactiveKafka/ReactiveKafka.docc/ConsumerGroupsAndRebalancing.md": ["seek handler", "rebalance events"],
        "ReactiveKafka/ReactiveKafka.docc/MigratingFromSwiftKafkaClient.md": ["consumer loop", "send"],
        "ReactiveKafkaTestKit/ReactiveKafkaTestKit.docc/TestingAgainstACluster.md": ["embedded cluster"],
        "ReactiveKafka/ReactiveKafka.docc/RunningAStream.md": ["run verbs"],
    ]

    @Test func theArticlesShowThisCodeVerbatim() throws {
        let source = try String(contentsOfFile: #filePath, encoding: .utf8)
        for (article, markers) in Self.shown {
            let text = try String(contentsOf: Self.catalogues.appendingPathComponent(article), encoding: .utf8)
            for marker in markers {
                let block = try #require(ReadmeBlocks.block("article \(marker)", in: source), "no \(marker) block")
                #expect(text.contains(block), "\(article) does not show the \(marker) block verbatim")
            }
        }
    }

    /// The stateful-streams article repeats the README's stateful examples: each must be the block its test runs.
    @Test func theStatefulStreamsArticleShowsTheTestedReadmeBlocks() throws {
        let article = try String(
            contentsOf: Self.catalogues.appendingPathComponent("ReactiveKafka/ReactiveKafka.docc/StatefulStreams.md"),
            encoding: .utf8)
        let tests = ReadmeBlocks.root.appendingPathComponent("Tests/ReactiveKafkaTests")
        let shown: [String: [String]] = [
            "Tables/TableReadmeExampleTests.swift": ["README tables"],
            "Readme/EventTimeReadmeExampleTests.swift": [
                "README windows", "README join", "README pattern", "README merge", "README kafka event time",
                "README actors",
            ],
            "EventSourcing/EventSourcedReadmeExampleTests.swift": [
                "README event sourcing behaviour", "README event sourcing flow",
            ],
        ]
        for (file, markers) in shown {
            let source = try String(contentsOf: tests.appendingPathComponent(file), encoding: .utf8)
            for marker in markers {
                let block = try #require(ReadmeBlocks.block(marker, in: source), "no \(marker) block in \(file)")
                #expect(article.contains(block), "StatefulStreams.md does not show the \(marker) block verbatim")
            }
        }
    }

    @Test func aProducerSendsAndCloses() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("orders", partitions: 1)
        let producerSettings = ProducerSettings(keySerializer: .string, valueSerializer: .string)
            .withBootstrapServers(kafka.bootstrapServers)
        // article kafka producer: begin
        let producer = try KafkaProducer(producerSettings)
        let metadata = try await producer.send(ProducerRecord(topic: "orders", key: "customer-7", value: "order 42"))
        await producer.close()
        // article kafka producer: end
        #expect(metadata.topic == "orders" && metadata.offset == 0)
    }

    static func transactionalProducer(
        _ producerSettings: ProducerSettings<String, String>, invoice: String, offsets: [TopicPartition: Int64],
        groupMetadata: ConsumerGroupMetadata
    ) async throws {
        // article transactional producer: begin
        let producer = try TransactionalProducer(producerSettings, transactionalId: "billing-1")
        try await producer.transaction { transaction in
            try await transaction.send(ProducerRecord(topic: "invoices", key: "customer-7", value: invoice))
            try await transaction.sendOffsets(offsets, groupMetadata: groupMetadata)
        }
        // article transactional producer: end
    }

    static func configReader() async throws {
        // article config reader: begin
        let config = ConfigReader(providers: [
            EnvironmentVariablesProvider(),
            try await FileProvider<JSONSnapshot>(filePath: "app.json"),
        ])
        let consumerSettings = try ConsumerSettings(config: config.scoped(to: "reactive-kafka.consumer"))
        let producerSettings = try ProducerSettings(config: config.scoped(to: "reactive-kafka.producer"))
        let committerSettings = try CommitterSettings(config: config.scoped(to: "reactive-kafka.committer"))
        // article config reader: end
        _ = (consumerSettings, producerSettings, committerSettings)
    }

    static func atLeastOnce(_ settings: ConsumerSettings<String, String>) -> DrainingControl<Void> {
        // article at least once: begin
        let control =
            Consumer
            .committableSource(settings, subscription: .topics("orders"))
            .mapAsync(parallelism: 1) { message in
                try await business(message.record.key, message.record.value)
                return message.committableOffset
            }
            .to(Committer.sink(CommitterSettings()))
            .start()
        // article at least once: end
        return control
    }

    fileprivate static func seekHandler(
        _ settings: ConsumerSettings<String, String>, store: OffsetStore, logger: Logger
    ) async {
        // article seek handler: begin
        struct SeekToStoredOffsets: PartitionAssignmentHandler {
            let store: OffsetStore
            func onAssign(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {
                try? consumer.seek(store.offsets(for: partitions)) // before the first record of these partitions
            }
        }
        let source = Consumer.committableSource(
            settings, subscription: .topics("orders").withPartitionAssignmentHandler(SeekToStoredOffsets(store: store)))
        // article seek handler: end
        // article rebalance events: begin
        for await event in source.materialized.rebalanceEvents() { logger.info("\(event)") }
        // article rebalance events: end
    }

    static func consumerLoop(logger: Logger) async throws {
        // article consumer loop: begin
        let settings = ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
            .withBootstrapServers("localhost:9092")
            .withGroupId("example-group")
        let graph = Consumer.committableSource(settings, subscription: .topics("topic-name"))
            .mapAsync(parallelism: 1) { message in
                try await process(message.record.value)
                return message.committableOffset
            }
            .to(Committer.sink(CommitterSettings()))
        let services = ServiceGroup(
            services: [KafkaStreamService(graph)], gracefulShutdownSignals: [.sigterm], logger: logger)
        try await services.run()
        // article consumer loop: end
    }

    static func send() async throws {
        // article send: begin
        let producer = try KafkaProducer(
            ProducerSettings(keySerializer: .string, valueSerializer: .string)
                .withBootstrapServers("localhost:9092"))
        let metadata = try await producer.send(ProducerRecord(topic: "topic-name", value: "Hello, World!"))
        // article send: end
        _ = metadata
    }

    @Test func anEmbeddedClusterIsSeededAndItsCommitsRead() async throws {
        // article embedded cluster: begin
        let kafka = try EmbeddedKafka(brokers: 3)
        try kafka.createTopic("orders", partitions: 4)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "orders",
            records: (0..<500).map { (key: "customer-\($0 % 10)", value: "order \($0)") })

        let settings = ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
            .withBootstrapServers(kafka.bootstrapServers)
            .withGroupId("enricher")
            .withProperty("auto.offset.reset", "earliest")
            .withProperties(EmbeddedKafka.fastGroupProperties)
        // … run the pipeline, then:
        let committed = try await TestData.committedOffsets(
            bootstrapServers: kafka.bootstrapServers, group: "enricher", topic: "orders", partitions: 4)
        // article embedded cluster: end
        #expect(settings.groupId == "enricher")
        #expect(committed.isEmpty, "nothing ran, so nothing is committed")
    }

    @Test func runRunsHereAndStartHandsBackAControl() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("orders", partitions: 1)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "orders",
            records: (0..<150).map { (key: "customer-\($0 % 10)", value: "order \($0)") })
        let settings = ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
            .withBootstrapServers(kafka.bootstrapServers)
            .withGroupId("runner")
            .withProperty("auto.offset.reset", "earliest")
            .withProperties(EmbeddedKafka.fastGroupProperties)
        // article run verbs: begin
        // Run to the end in this task: the sink's result.
        let counted = try await Consumer.plainSource(settings, subscription: .topics("orders"))
            .take(100)
            .to(Sinks.collect())
            .run()

        // Start, keep the control, drain on shutdown.
        let control = Consumer.committableSource(settings, subscription: .topics("orders"))
            .map(\.committableOffset)
            .to(Committer.sink(CommitterSettings()))
            .start()
        try await control.drainAndShutdown()
        // article run verbs: end
        #expect(counted.map(\.value) == (0..<100).map { "order \($0)" })
        #expect(control.isShutdown)
    }
}
