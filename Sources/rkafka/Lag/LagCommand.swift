import ArgumentParser
import Foundation
import Logging
import ReactiveKafka

/// `rkafka lag`: a consumer-group lag exporter for Prometheus.
struct LagCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lag",
        abstract: "Serve consumer-group lag in records and seconds as Prometheus metrics.",
        discussion: """
            Every --interval it reads the committed offsets of the watched groups and the end \
            offsets of their partitions, and serves Kafka Lag Exporter's metrics at /metrics \
            (kafka_consumergroup_group_lag, …_lag_seconds, …) and a health check at /health \
            (503 while the cluster cannot be read). --group and --topic are regular expressions \
            matched against whole names (repeatable; default: all). A --group made only of \
            letters, digits, '.', '_' and '-' is also read by name, which works on clusters that \
            cannot list groups (librdkafka's mock cluster, `rkafka broker`). Lag in seconds is \
            estimated from the end offsets sampled each round (see the README for its accuracy). \
            Stops on SIGINT or SIGTERM.
            """
    )

    @OptionGroup var cluster: ClusterOptions

    @Option(help: "Consumer groups to watch, a regular expression (repeatable; default: all).")
    var group: [String] = []

    @Option(help: "Topics to watch, a regular expression (repeatable; default: all but internal topics).")
    var topic: [String] = []

    @Option(help: "Where to serve HTTP, HOST:PORT (port 0: any free port).")
    var listen = ListenAddress(host: "127.0.0.1", port: 9308)

    @Option(help: "Time between collection rounds, e.g. 5s, 500ms.")
    var interval = DurationArgument(.seconds(5), description: "5s")

    @Option(help: "The most one collection round may take (default: the interval, at most 10s).")
    var timeout: DurationArgument?

    @Option(help: "End-offset samples kept per partition to estimate lag in seconds.")
    var window = 60

    @Option(help: "The cluster_name label of every series.")
    var clusterName = "default"

    @Option(
        name: .customLong("property"),
        help: ArgumentHelp(
            "A librdkafka client property, KEY=VALUE (repeatable), e.g. security settings.", valueName: "key=value")
    )
    var propertyArguments: [String] = []

    func validate() throws {
        if interval.duration < .milliseconds(10) {
            throw ValidationError("--interval must be at least 10ms, got \(interval)")
        }
        if let timeout, timeout.duration < .milliseconds(10) {
            throw ValidationError("--timeout must be at least 10ms, got \(timeout)")
        }
        if window < 2 {
            throw ValidationError("--window must be at least 2 samples (two are needed to interpolate), got \(window)")
        }
        if clusterName.isEmpty { throw ValidationError("--cluster-name must not be empty") }
        do { _ = try filters } catch { throw ValidationError("\(error.message)") }
        _ = try properties
    }

    /// The --group and --topic filters.
    var filters: (groups: NameFilter, topics: NameFilter) {
        get throws(KafkaError) {
            do { return (try NameFilter(group), try NameFilter(topic)) } catch {
                throw KafkaError(.invalidConfiguration, "--group/--topic: \(error.message)")
            }
        }
    }

    /// `--property` arguments as a dictionary (later ones win).
    var properties: [String: String] {
        get throws {
            var result: [String: String] = [:]
            for argument in propertyArguments {
                guard let equals = argument.firstIndex(of: "="), equals != argument.startIndex else {
                    throw ValidationError("--property must be KEY=VALUE (a librdkafka property), got \"\(argument)\"")
                }
                let key = String(argument[..<equals]).trimmingCharacters(in: .whitespaces)
                if key == "bootstrap.servers" {
                    throw ValidationError("--property bootstrap.servers is not allowed: use --bootstrap-servers")
                }
                result[key] = String(argument[argument.index(after: equals)...])
            }
            return result
        }
    }

    /// The collector's configuration from the options.
    func collectorConfiguration() throws(KafkaError) -> LagCollector.Configuration {
        let (groups, topics) = try filters
        let timeout = timeout?.duration ?? min(interval.duration, .seconds(10))
        return LagCollector.Configuration(
            groups: groups, topics: topics, interval: interval.duration, timeout: timeout, windowSize: window)
    }

    func run() async throws {
        let connection = try cluster.connect()
        defer { connection.close() }
        if connection.embedded != nil {
            printError(
                "rkafka lag: no --bootstrap-servers given, watching an empty embedded cluster at \(connection.bootstrapServers): "
                    + "pass a cluster's address (e.g. `rkafka broker`'s) to see real lag")
        }
        let settings = ConsumerSettings<KafkaBytes?, KafkaBytes?>(
            keyDeserializer: .optionalBytes, valueDeserializer: .optionalBytes
        )
        .withProperties(try properties)
        .withBootstrapServers(connection.bootstrapServers)
        .withProperty("log_level", "3")
        let logger = Logger(label: "rkafka.lag") { StreamLogHandler.standardError(label: $0) }
        let collector = try LagCollector(settings, configuration: try collectorConfiguration(), logger: logger)
        let exporter = LagExporter(collector: collector, clusterName: clusterName)
        let server: MetricsHTTPServer
        do {
            server = try await MetricsHTTPServer.start(listen, responder: exporter.respond)
        } catch {
            printError("rkafka lag: cannot listen on \(listen): \(error)")
            throw ExitCode.failure
        }
        say(
            "rkafka lag: serving http://\(server.address)/metrics and /health; reading \(connection.bootstrapServers) every \(interval)"
        )
        let collecting = Task { try await collector.run() }
        let reporting = Task { await Self.reportTransitions(collector) }
        let signal = await waitForTerminationSignal()
        collecting.cancel()
        _ = await collecting.result
        reporting.cancel()
        await server.stop()
        say("rkafka lag: \(signalName(signal)): stopped")
    }

    /// Prints a line when collection goes up or down (and after the first round), not every round.
    static func reportTransitions(_ collector: LagCollector) async {
        var wasUp: Bool?
        for await status in collector.statuses() where status.isUp != wasUp {
            wasUp = status.isUp
            if let snapshot = status.snapshot {
                let partitions = Set(snapshot.groups.flatMap { $0.partitions.map(\.topicPartition) }).count
                say(
                    "rkafka lag: up: \(snapshot.groups.count) group(s) on \(partitions) partition(s), round took \(status.duration.map { String(format: "%.3f", $0.inSeconds) } ?? "?") s"
                )
            } else {
                say("rkafka lag: down: \(status.error?.message ?? "no answer")")
            }
        }
    }
}
