import ArgumentParser
import ReactiveKafka

/// `rkafka produce`: every stdin line becomes a record of `--topic`.
struct ProduceCommand: ParsableCommand {
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

    @Option(help: ArgumentHelp("Split each line into key and value at the first occurrence of this text.", valueName: "separator"))
    var keySeparator: String?

    @Option(help: "Create the topic with this many partitions first (ignored if it exists; the mock cluster of `rkafka broker` cannot create topics remotely, use its --topic).")
    var partitions: Int?

    @Option(help: "How long to wait at the end for outstanding acknowledgements, in seconds.")
    var flushTimeout: Int = 60

    func validate() throws {
        do { _ = try TopicSpec(parsing: topic) } catch { throw ValidationError("--topic: \(error)") }
        if let keySeparator, keySeparator.isEmpty { throw ValidationError("--key-separator must not be empty") }
        if let partitions, partitions < 1 { throw ValidationError("--partitions must be at least 1, got \(partitions)") }
        if flushTimeout < 0 { throw ValidationError("--flush-timeout must not be negative") }
    }

    func run() throws {
        let connection = try cluster.connect()
        defer { connection.close() }
        if connection.embedded != nil {
            printError("rkafka produce: no --bootstrap-servers given, writing to an embedded cluster at "
                + "\(connection.bootstrapServers): its data is gone when rkafka exits (use `rkafka broker` for a lasting one)")
        }
        if let partitions {
            if try !connection.createTopic(topic, partitions: partitions) {
                printError("rkafka produce: the cluster cannot create topics remotely (CreateTopics unsupported); "
                    + "\(topic) is auto-created with the broker's default partition count instead of \(partitions)")
            }
        }

        let producer = try RawLineProducer(bootstrapServers: connection.bootstrapServers)
        var lineNumber = 0
        var inputError: LineRecordError?
        while let line = readLine(strippingNewline: true) {
            lineNumber += 1
            do {
                let record = try LineRecord(parsing: line, keySeparator: keySeparator, lineNumber: lineNumber)
                try producer.send(topic: topic, key: record.key, value: record.value)
            } catch let error as LineRecordError {
                inputError = error
                break
            }
        }
        let result = producer.flush(timeout: .seconds(flushTimeout))
        let pending = producer.sent - result.delivered - result.failed
        var summary = "rkafka produce: \(result.delivered) of \(producer.sent) records written to \(topic)"
        if result.failed > 0 { summary += ", \(result.failed) failed (\(result.firstError ?? "unknown error"))" }
        if pending > 0 { summary += ", \(pending) unacknowledged after \(flushTimeout) s" }
        printError(summary)
        if let inputError { throw inputError }
        if result.failed > 0 || pending > 0 { throw ExitCode(1) }
    }
}
