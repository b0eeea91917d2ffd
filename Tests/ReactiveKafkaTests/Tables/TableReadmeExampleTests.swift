import Foundation
import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Testing

/// The README's tables example, verbatim apart from the cluster address and file path, so it cannot rot.
@Suite struct TableReadmeExampleTests {
    @Test func theReadmeShowsThisCodeVerbatim() throws {
        try ReadmeBlocks.expectInReadme(markers: ["README tables"])
    }

    @Test func theReadmeTableExampleRestoresJoinsAndCloses() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("customers", partitions: 2)
        try kafka.createTopic("orders", partitions: 2)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "customers",
            records: [(key: "c-1", value: "Ada"), (key: "c-2", value: "Grace")])
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "orders",
            records: [(key: "c-1", value: "order 1"), (key: "c-2", value: "order 2")])
        let bootstrapServers = kafka.bootstrapServers
        let databasePath = try TableTestSupport.temporaryPath("customers.sqlite")

        let lines = try #require(
            await BoundedWait.within(.seconds(60)) { () -> Result<[String], any Error> in
                do {
                    var printed: [String] = []
                    func print(_ line: String) { printed.append(line) }
                    // README tables: begin
                    let settings = ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
                        .withBootstrapServers(bootstrapServers)
                        .withProperty("auto.offset.reset", "earliest")
                    let customers = try KafkaTable(
                        topic: "customers", settings: settings,
                        options: KafkaTableOptions(storage: .sqlite(path: databasePath)))
                    let running = Task { try await customers.run() } // or run it in a ServiceGroup
                    try await customers.ready() // every partition read up to its end offset at start

                    print(customers["c-1"] ?? "unknown")

                    let enriched =
                        Consumer
                        .plainSource(settings.withGroupId("enricher"), subscription: .topics("orders"))
                        .join(customers, key: { $0.key })
                        .map { "\($0.record.value) for \($0.value)" }
                    for try await line in enriched.take(2) { print(line) }

                    customers.close()
                    try await running.value
                    // README tables: end
                    return .success(printed)
                } catch {
                    return .failure(error)
                }
            }, "the README example did not finish within 60 s"
        ).get()
        #expect(lines.first == "Ada")
        #expect(Set(lines.dropFirst()) == ["order 1 for Ada", "order 2 for Grace"])
    }
}
