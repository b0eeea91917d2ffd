import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Synchronization
import Testing

/// The README's parallel-source example, verbatim apart from the cluster address.
@Suite struct ParallelReadmeExampleTests {
    @Test func theReadmeParallelSourceProcessesEveryOrderAndCommits() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("orders", partitions: 3)
        try kafka.createTopic("orders-dlq", partitions: 1)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "orders",
            records: (0..<600).map { (key: "customer-\($0 % 50)", value: "order \($0)") })
        let bootstrapServers = kafka.bootstrapServers
        let saved = Mutex<[String: [String]]>([:])
        @Sendable func saveOrder(_ customer: String, _ order: String) async throws {
            try await Task.sleep(for: .milliseconds(1))
            saved.withLock { $0[customer, default: []].append(order) }
        }
        let consumerSettings = ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
            .withBootstrapServers(bootstrapServers)
            .withGroupId("order-savers")
            .withProperty("auto.offset.reset", "earliest")
        let producerSettings = ProducerSettings(keySerializer: .string, valueSerializer: .string)
            .withBootstrapServers(bootstrapServers)

        // README parallel: begin
        let source = Consumer.parallelSource(
            consumerSettings, subscription: .topics("orders"),
            parallel: ParallelSettings(ordering: .key, maxConcurrency: 1_000),
            onFailure: .deadLetter(topic: "orders-dlq", producer: producerSettings)
        ) { record in
            try await saveOrder(record.key, record.value) // one customer's orders in offset order
        }
        let stream = Task { for try await _ in source {} }
        // README parallel: end

        var committed = 0
        for _ in 0..<200 where committed < 600 {
            try await Task.sleep(for: .milliseconds(100))
            let offsets = try await TestData.committedOffsets(
                bootstrapServers: bootstrapServers, group: "order-savers", topic: "orders", partitions: 3)
            committed = Int(offsets.values.reduce(0, +))
        }
        try await source.materialized.drainAndShutdown(stream)
        #expect(committed == 600)
        let orders = saved.withLock { $0 }
        #expect(orders.values.reduce(0) { $0 + $1.count } == 600)
        for (customer, list) in orders {
            let numbers = list.compactMap { Int($0.dropFirst("order ".count)) }
            #expect(numbers == numbers.sorted(), "orders of \(customer) out of order")
        }
        try ReadmeBlocks.expectInReadme(markers: ["README parallel"])
    }
}
