import ArgumentParser
import ReactiveKafka
import ReactiveKafkaTestKit

/// `--bootstrap-servers`, shared by every command: without it a command runs
/// against an embedded cluster that lives as long as the command.
struct ClusterOptions: ParsableArguments {
    @Option(
        name: .customLong("bootstrap-servers"),
        help: ArgumentHelp(
            "Kafka brokers, HOST:PORT[,HOST:PORT…]. Without it, an embedded cluster is started for this command only.",
            valueName: "servers"
        )
    )
    var bootstrapServers: String?

    func validate() throws {
        if let servers = bootstrapServers, servers.split(separator: ",").contains(where: { !$0.contains(":") }) {
            throw ValidationError("--bootstrap-servers must be HOST:PORT[,HOST:PORT…], got \"\(servers)\"")
        }
    }

    /// Connects to the given servers, or starts an embedded cluster of `brokers` brokers.
    func connect(brokers: Int = 1) throws(KafkaError) -> ClusterConnection {
        if let bootstrapServers { return ClusterConnection(bootstrapServers: bootstrapServers, embedded: nil) }
        let kafka = try EmbeddedKafka(brokers: brokers)
        return ClusterConnection(bootstrapServers: kafka.bootstrapServers, embedded: kafka)
    }
}

/// Where a command's clients connect, and the embedded cluster it owns, if any.
struct ClusterConnection: Sendable {
    let bootstrapServers: String
    /// Set when the command started its own cluster; stopping it loses its data.
    let embedded: EmbeddedKafka?

    /// Creates `topic` with `partitions` partitions: through the mock API on an embedded
    /// cluster, through the Admin API on a real one. Returns `false` (and creates nothing)
    /// when the cluster supports neither, e.g. another process's `rkafka broker`: the topic
    /// is then auto-created on first use with that broker's default partition count.
    @discardableResult
    func createTopic(_ topic: String, partitions: Int) throws(KafkaError) -> Bool {
        if let embedded {
            try embedded.createTopic(topic, partitions: partitions)
            return true
        }
        return try RawClient.createTopic(bootstrapServers: bootstrapServers, topic: topic, partitions: partitions)
    }

    /// Stops the embedded cluster, if this connection owns one.
    func close() { embedded?.stop() }
}
