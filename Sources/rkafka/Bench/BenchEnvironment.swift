import Foundation
import ReactiveKafka
import ReactiveKafkaTestKit

/// The shape of a benchmark run: how much data, and where.
struct BenchParameters: Sendable {
    /// Messages a scenario moves.
    var messages: Int
    /// Value size in bytes.
    var size: Int
    /// Partitions of every benchmark topic.
    var partitions: Int
    /// How long a consuming loop may see no new message before it gives up.
    var stallTimeout: Duration = .seconds(30)
}

/// One scenario's cluster and topics. Baseline and connector version read the same
/// seeded input (with different consumer groups) and write to separate output topics.
struct BenchEnvironment: Sendable {
    let parameters: BenchParameters
    let connection: ClusterConnection
    /// Seeded with `parameters.messages` values round-robin over the partitions, if the scenario consumes.
    let inputTopic: String
    /// Where the baseline writes.
    let baselineOutputTopic: String
    /// Where the connector version writes.
    let connectorOutputTopic: String
    /// The baseline's consumer group.
    let baselineGroup: String
    /// The connector version's consumer group.
    let connectorGroup: String
    /// Set after every benchmark producer's properties (the latency scenario's `linger.ms`).
    var producerOverrides: [(String, String)] = []
    /// Set after every benchmark consumer's properties.
    var consumerOverrides: [(String, String)] = []

    var bootstrapServers: String { connection.bootstrapServers }

    /// Topic and group names unique to `scenario` in this run; creates the topics.
    static func make(scenario: String, parameters: BenchParameters, connection: ClusterConnection) throws(KafkaError)
        -> BenchEnvironment
    {
        let run = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let prefix = "bench-\(scenario)-\(run)"
        let environment = BenchEnvironment(
            parameters: parameters,
            connection: connection,
            inputTopic: "\(prefix)-in",
            baselineOutputTopic: "\(prefix)-out-baseline",
            connectorOutputTopic: "\(prefix)-out-connector",
            baselineGroup: "\(prefix)-baseline",
            connectorGroup: "\(prefix)-connector"
        )
        for topic in [environment.inputTopic, environment.baselineOutputTopic, environment.connectorOutputTopic] {
            if try !connection.createTopic(topic, partitions: parameters.partitions) {
                printError(
                    "rkafka bench: the cluster cannot create topics; \(topic) is auto-created with its default partition count, not \(parameters.partitions)"
                )
            }
        }
        return environment
    }

    /// Librdkafka properties of every benchmark producer: the C reference's.
    var producerProperties: [(String, String)] {
        [
            ("bootstrap.servers", bootstrapServers),
            ("linger.ms", "5"),
            ("batch.num.messages", "10000"),
            ("queue.buffering.max.messages", "1000000"),
        ] + producerOverrides
    }

    /// Librdkafka properties of every benchmark consumer in `group`: the C reference's, plus
    /// `queued.min.messages` raised so that only the byte budget (`queued.max.messages.kbytes`)
    /// bounds prefetching. With the default (100,000 messages over the whole consumer queue) a
    /// consumer slower than its fetcher, like every pipeline, stops fetching at 100,000 queued
    /// messages and librdkafka 2.0.2 does not wake the fetcher when the queue drains: it waits
    /// ~0.9 s each time (measured: the raw pipeline ran at 0.19M msgs/s instead of 1.4M).
    func consumerProperties(group: String) -> [(String, String)] {
        [
            ("bootstrap.servers", bootstrapServers),
            ("group.id", group),
            ("auto.offset.reset", "earliest"),
            ("enable.auto.commit", "false"),
            ("queued.min.messages", "10000000"),
        ] + consumerOverrides
    }

    /// The same properties as a dictionary, for the connector's settings types.
    func consumerSettingsProperties(group: String) -> [String: String] {
        Dictionary(consumerProperties(group: group), uniquingKeysWith: { _, new in new })
    }

    /// The same properties as a dictionary, for the connector's settings types.
    var producerSettingsProperties: [String: String] {
        Dictionary(producerProperties, uniquingKeysWith: { _, new in new })
    }
}
