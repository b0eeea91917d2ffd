import ArgumentParser
import Foundation
import ReactiveKafka
import ReactiveKafkaTestKit

/// `rkafka broker`: a standalone embedded cluster that other processes (and any Kafka
/// client) can use until SIGINT/SIGTERM.
struct BrokerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "broker",
        abstract: "Run an embedded Kafka cluster until SIGINT/SIGTERM.",
        discussion: """
            The first line on stdout is `bootstrap.servers=HOST:PORT[,HOST:PORT…]`; point any \
            Kafka client there. The cluster is librdkafka's mock cluster: data lives in memory \
            and is gone when the broker exits; a partition keeps at most 100,000 batches / 5 MB. \
            It does not support CreateTopics requests: create topics here with --topic, or let \
            them be auto-created on first use (librdkafka's mock gives auto-created topics 4 \
            partitions; producers request auto-creation, consumers do not unless \
            allow.auto.create.topics=true).
            """
    )

    @Option(help: "Number of brokers in the cluster.")
    var brokers: Int = 1

    @Option(
        name: .customLong("topic"),
        help: ArgumentHelp("Create a topic at start-up, NAME[:PARTITIONS] (repeatable).", valueName: "name:partitions"),
        transform: { text in try TopicSpec(parsing: text) }
    )
    var topics: [TopicSpec] = []

    func validate() throws {
        guard brokers >= 1 else { throw ValidationError("--brokers must be at least 1, got \(brokers)") }
    }

    func run() async throws {
        let kafka = try EmbeddedKafka(brokers: brokers)
        for topic in topics {
            try kafka.createTopic(topic.name, partitions: topic.partitions, replicationFactor: min(3, brokers))
        }
        print("bootstrap.servers=\(kafka.bootstrapServers)")
        fflush(nil) // all output streams: stdout is a C global Swift 6 will not touch
        let topicList = topics.map { "\($0.name) (\($0.partitions) partitions)" }.joined(separator: ", ")
        printError(
            "rkafka broker: \(brokers) broker(s) at \(kafka.bootstrapServers)"
                + (topics.isEmpty ? "" : "; topics: \(topicList)") + ". Stop with Ctrl-C or SIGTERM.")

        let signal = await waitForTerminationSignal()
        printError("rkafka broker: \(signalName(signal)) received, stopping the cluster")
        kafka.stop()
    }
}

/// Writes `message` and a newline to stderr, unbuffered.
func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
