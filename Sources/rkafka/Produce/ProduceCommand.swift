import ArgumentParser
import ReactiveKafka
import StreamKit

/// `rkafka produce`: every stdin line becomes a record of `--topic`.
struct ProduceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "produce",
        abstract: "Write stdin lines to a topic, one record a line.",
        discussion: """
            With --key-separator S, each line is KEY S VALUE (split at the first S); \
            without it, lines are values with null keys. Ends at end of input, after \
            every record is acknowledged; prints a summary to stderr.
            """
    )

    @OptionGroup var cluster: ClusterOptions

    @Option(help: "The topic to write to.")
    var topic: String

    @Option(
        help: ArgumentHelp(
            "Split each line into key and value at the first occurrence of this text.", valueName: "separator"))
    var keySeparator: String?

    @Option(
        help:
            "Create the topic with this many partitions first (ignored if it exists; the mock cluster of `rkafka broker` cannot create topics remotely, use its --topic)."
    )
    var partitions: Int?

    @Option(help: "How long to wait at the end for outstanding acknowledgements, in seconds.")
    var flushTimeout: Int = 60

    func validate() throws {
        do { _ = try TopicSpec(parsing: topic) } catch { throw ValidationError("--topic: \(error)") }
        if let keySeparator, keySeparator.isEmpty { throw ValidationError("--key-separator must not be empty") }
        if let partitions, partitions < 1 {
            throw ValidationError("--partitions must be at least 1, got \(partitions)")
        }
        if flushTimeout < 0 { throw ValidationError("--flush-timeout must not be negative") }
    }

    func run() async throws {
        let connection = try cluster.connect()
        defer { connection.close() }
        if connection.embedded != nil {
            printError(
                "rkafka produce: no --bootstrap-servers given, writing to an embedded cluster at "
                    + "\(connection.bootstrapServers): its data is gone when rkafka exits (use `rkafka broker` for a lasting one)"
            )
        }
        if let partitions {
            if try !connection.createTopic(topic, partitions: partitions) {
                printError(
                    "rkafka produce: the cluster cannot create topics remotely (CreateTopics unsupported); "
                        + "\(topic) is auto-created with the broker's default partition count instead of \(partitions)")
            }
        }

        let settings = ProducerSettings<String, String>(keySerializer: .string, valueSerializer: .string)
            .withBootstrapServers(connection.bootstrapServers)
            .withProperty("linger.ms", "5")
            .withCloseTimeout(.seconds(flushTimeout))
        let parsed = LineCounter()
        let records = LineRecords(lines: LineBatches(), topic: topic, keySeparator: keySeparator, parsed: parsed)
        do {
            // plainSink completes once every record is acknowledged, and fails at the first
            // failed delivery or unparsable line (records before it are still flushed).
            try await Source(records).run(into: Producer.plainSink(settings))
        } catch {
            printError("rkafka produce: stopped after \(parsed.value) line(s) of input: \(error)")
            throw ExitCode.failure
        }
        printError("rkafka produce: \(parsed.value) records written to \(topic)")
    }
}
