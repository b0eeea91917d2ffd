import Configuration
import Foundation
import Logging
import ReactiveKafka
import ReactiveKafkaTestKit
import ServiceLifecycle
import StreamKit
import Testing

// The Swift forms of the Alpakka snippets in MigratingFromAlpakkaKafka.md, compiled here and
// shown verbatim in the article, so they cannot rot. The anatomy pipeline also runs against
// the embedded cluster.

/// What the snippets' application code calls.
private func business(_ key: String, _ value: [UInt8]) async throws {}
private struct Solution: Sendable {}
private func businessLogic(_ value: [UInt8]) -> Solution { Solution() }
private func processRevokedPartitions(_ partitions: Set<TopicPartition>) async {}
private struct Progress: Sendable {
    func processedOffsets(of partitions: Set<TopicPartition>) -> [TopicPartition: Int64] { [:] }
}

@Suite struct MigrationArticleExampleTests {
    static let article = ReadmeBlocks.root.appendingPathComponent(
        "Sources/ReactiveKafka/ReactiveKafka.docc/MigratingFromAlpakkaKafka.md")

    @Test func theArticleShowsThisCodeVerbatim() throws {
        let text = try String(contentsOf: Self.article, encoding: .utf8)
        let source = try String(contentsOfFile: #filePath, encoding: .utf8)
        for marker in [
            "setup", "anatomy graph", "anatomy service", "committable sink", "group configuration",
            "rebalance listener",
            "assignment handler", "transactions", "actor",
        ] {
            let block = try #require(ReadmeBlocks.block("article \(marker)", in: source), "no \(marker) block")
            #expect(text.contains(block), "MigratingFromAlpakkaKafka.md does not show the \(marker) block verbatim")
        }
    }

    @Test func setupReadsTheConsumerAndProducerSections() throws {
        // article setup: begin
        let config = ConfigReader(providers: [EnvironmentVariablesProvider()])
        let consumerSettings = try ConsumerSettings(
            config: config.scoped(to: "reactive-kafka.consumer"),
            keyDeserializer: .string, valueDeserializer: .byteArray
        )
        .withBootstrapServers("localhost:9092")
        .withGroupId("group1")
        .withProperty("auto.offset.reset", "earliest")

        let producerSettings = try ProducerSettings(
            config: config.scoped(to: "reactive-kafka.producer"), keySerializer: .string, valueSerializer: .byteArray
        )
        .withBootstrapServers("localhost:9092")
        // article setup: end
        #expect(consumerSettings.groupId == "group1")
        #expect(producerSettings.properties["bootstrap.servers"] == "localhost:9092")
    }

    @Test func theAnatomyPipelineConsumesProducesAndCommits() async throws {
        let kafka = try EmbeddedKafka()
        let topic1 = "topic1"
        try kafka.createTopic(topic1, partitions: 2)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: topic1,
            records: (0..<50).map { (key: "k\($0)", value: "v\($0)") })
        let consumerSettings = ConsumerSettings(keyDeserializer: .string, valueDeserializer: .byteArray)
            .withBootstrapServers(kafka.bootstrapServers).withGroupId("anatomy")
            .withProperty("auto.offset.reset", "earliest").withProperties(EmbeddedKafka.fastGroupProperties)
        let producerSettings = ProducerSettings(keySerializer: .string, valueSerializer: .byteArray)
            .withBootstrapServers(kafka.bootstrapServers)
        let committerSettings = CommitterSettings().withMaxInterval(.milliseconds(50))
        let graph = Self.anatomy(consumerSettings, producerSettings, committerSettings, topic1: topic1)

        // As in the talk, the graph copies topic1 into itself: commits pass the 50 seeded records and go on.
        let control = graph.start()
        var committed: Int64 = 0
        for _ in 0..<300 where committed < 50 {
            try await Task.sleep(for: .milliseconds(100))
            committed = try await TestData.committedOffsets(
                bootstrapServers: kafka.bootstrapServers, group: "anatomy", topic: topic1, partitions: 2
            ).values.reduce(0, +)
        }
        try await control.drainAndShutdown()
        #expect(committed >= 50)
    }

    static func anatomy(
        _ consumerSettings: ConsumerSettings<String, [UInt8]>, _ producerSettings: ProducerSettings<String, [UInt8]>,
        _ committerSettings: CommitterSettings, topic1: String
    ) -> RunnableGraph<ConsumerControl, Void> {
        // article anatomy graph: begin
        let graph =
            Consumer
            .committableSource(consumerSettings, subscription: .topics(topic1))
            .map { message in
                ProducerMessage.single(
                    ProducerRecord(topic: topic1, key: message.record.key, value: message.record.value),
                    passThrough: message.committableOffset)
            }
            .via(Producer.flexiFlow(producerSettings))
            .map { $0.passThrough }
            .to(Committer.sink(committerSettings))
        // article anatomy graph: end
        return graph
    }

    static func serve(_ graph: RunnableGraph<ConsumerControl, Void>, logger: Logger) async throws {
        // article anatomy service: begin
        // SIGTERM: stop polling, wait for in-flight records and their commits, leave the group.
        let services = ServiceGroup(
            services: [KafkaStreamService(graph)], gracefulShutdownSignals: [.sigterm], logger: logger)
        try await services.run()
        // article anatomy service: end
    }

    static func committableSink(_ consumerSettings: ConsumerSettings<String, [UInt8]>, topic: String)
        -> DrainingControl<Void>
    {
        // article committable sink: begin
        let committerSettings = CommitterSettings()

        let control: DrainingControl<Void> =
            Consumer
            .committableSource(consumerSettings, subscription: .topics(topic))
            .mapAsync(parallelism: 1) { message in
                try await business(message.record.key, message.record.value)
                return message.committableOffset
            }
            .to(Committer.sink(committerSettings))
            .start()
        // article committable sink: end
        return control
    }

    static func groupConfiguration(_ consumerSettings: ConsumerSettings<String, [UInt8]>)
        -> Source<KafkaConsumerSequence<CommittableMessage<String, [UInt8]>>, ConsumerControl>
    {
        // article group configuration: begin
        let settings =
            consumerSettings
            .withGroupId("my-group")
            .withProperty("session.timeout.ms", "30000")
            .withProperty("partition.assignment.strategy", "range")
            .withProperty("heartbeat.interval.ms", "3000")
        let source = Consumer.committableSource(settings, subscription: .topics("Topic1", "Topic2", "Topic3"))
        // article group configuration: end
        return source
    }

    static func rebalanceListener(_ consumerSettings: ConsumerSettings<String, [UInt8]>) -> Task<Void, Never> {
        // article rebalance listener: begin
        let source = Consumer.committableSource(consumerSettings, subscription: .topics("topic1", "topic2"))
        let listener = Task {
            for await event in source.materialized.rebalanceEvents() {
                switch event {
                case .assigned: break
                case .revoked(let revoked): await processRevokedPartitions(revoked)
                case .lost: break
                }
            }
        }
        // article rebalance listener: end
        return listener
    }

    fileprivate static func assignmentHandler(_ progress: Progress) -> Subscription {
        // article assignment handler: begin
        struct CommitOnRevoke: PartitionAssignmentHandler {
            let progress: Progress
            func onRevoke(_ partitions: Set<TopicPartition>, consumer: RestrictedConsumer) {
                try? consumer.commitSync(progress.processedOffsets(of: partitions))
            }
        }
        let subscription = Subscription.topics("topic1", "topic2")
            .withPartitionAssignmentHandler(CommitOnRevoke(progress: progress))
        // article assignment handler: end
        return subscription
    }

    static func transactions(
        _ consumerSettings: ConsumerSettings<String, [UInt8]>,
        _ transform: FlowOf<TransactionalMessage<String, [UInt8]>, TransactionalMessage<String, [UInt8]>>
    ) -> DrainingControl<Void> {
        // article transactions: begin
        let producerSettings = ProducerSettings(keySerializer: .string, valueSerializer: .byteArray)
            .withBootstrapServers("localhost:9092")
            .withEosCommitInterval(.milliseconds(100))

        let control =
            Transactional
            .source(consumerSettings, subscription: .topics("source-topic"))
            .via(transform)
            .map { message in
                ProducerMessage.single(
                    ProducerRecord<String, [UInt8]>(topic: "sink-topic", value: message.record.value),
                    passThrough: message.partitionOffset)
            }
            .to(Transactional.sink(producerSettings, transactionalId: "transactional-id"))
            .start()
        // article transactions: end
        return control
    }

    static func actor(_ consumerSettings: ConsumerSettings<String, [UInt8]>) -> DrainingControl<Void> {
        // article actor: begin
        actor ProblemSolver {
            func solve(_ problem: [UInt8]) -> Solution { businessLogic(problem) }
        }
        let solver = ProblemSolver()

        let control =
            Consumer
            .committableSource(consumerSettings, subscription: .topics("topic1", "topic2"))
            .mapAsync(parallelism: 5) { message in
                (await solver.solve(message.record.value), message.committableOffset)
            }
            .map { _, offset in offset }
            .to(Committer.sink(CommitterSettings()))
            .start()
        // article actor: end
        return control
    }
}
