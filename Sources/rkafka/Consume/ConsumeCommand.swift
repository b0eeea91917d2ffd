import ArgumentParser
import Foundation
import Logging
import ReactiveKafka
import ServiceLifecycle
import StreamKit
import Synchronization

/// `rkafka consume`: print a topic's records to stdout, one line each.
struct ConsumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consume",
        abstract: "Print a topic's records to stdout, one a line.",
        discussion: """
            --format json prints one object a line with topic, partition, offset, timestamp, \
            key, value and headers. With --group it commits the offsets of what it has written \
            (at-least-once: output is flushed before its offsets are committed), and on SIGTERM \
            or SIGINT it drains: everything read is written and flushed, then committed, then it \
            leaves the group. Without --group it reads in a throw-away group and commits nothing. \
            --from-beginning applies where the group has no committed offset. --property passes \
            librdkafka consumer properties through, e.g. --property session.timeout.ms=6000 for \
            quicker failover of crashed group members. Every --lag-interval (default 5s; 0s: \
            never) it prints to stderr how many records it wrote and its lag, in records and in \
            seconds (estimated from the partitions' end offsets sampled over time): the group's \
            committed offsets behind the ends (without --group, the read position, which runs \
            ahead of the output by what is buffered).
            """
    )

    @OptionGroup var cluster: ClusterOptions

    @Option(help: "The topic to read.")
    var topic: String

    @Option(help: "Consumer group: commit what is written, resume from the group's offsets.")
    var group: String?

    @Flag(help: "Start from the earliest offset (where the group has no committed offset); default: only new records.")
    var fromBeginning = false

    @Option(help: "Stop after this many records.")
    var count: Int?

    @Option(help: "Output format: text (the value) or json (one object a line).")
    var format: Format = .text

    @Option(help: "How often to print the lag (records and seconds) to stderr, e.g. 5s; 0s: never.")
    var lagInterval = DurationArgument(.seconds(5), description: "5s")

    @Option(
        name: .customLong("property"),
        help: ArgumentHelp("A librdkafka consumer property, KEY=VALUE (repeatable).", valueName: "key=value")
    )
    var propertyArguments: [String] = []

    /// Properties that have an option of their own or that the commit guarantee depends on.
    static let reservedProperties: [String: String] = [
        "bootstrap.servers": "use --bootstrap-servers",
        "group.id": "use --group",
        "enable.auto.commit": "with --group, rkafka consume commits what it has written itself",
        "auto.offset.reset": "use --from-beginning",
    ]

    /// `--property` arguments as a dictionary (later ones win).
    var properties: [String: String] {
        get throws {
            var result: [String: String] = [:]
            for argument in propertyArguments {
                guard let equals = argument.firstIndex(of: "="), equals != argument.startIndex else {
                    throw ValidationError(
                        "--property must be KEY=VALUE (a librdkafka consumer property), got \"\(argument)\"")
                }
                let key = String(argument[..<equals]).trimmingCharacters(in: .whitespaces)
                if let reason = Self.reservedProperties[key] {
                    throw ValidationError("--property \(key) is not allowed: \(reason)")
                }
                result[key] = String(argument[argument.index(after: equals)...])
            }
            return result
        }
    }

    /// `--format` values.
    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, json
        var lineFormat: RecordLineFormat { self == .text ? .text : .json }
    }

    func validate() throws {
        do { _ = try TopicSpec(parsing: topic) } catch { throw ValidationError("--topic: \(error)") }
        if let group, group.isEmpty { throw ValidationError("--group must not be empty") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1, got \(count)") }
        if lagInterval.duration > .zero, lagInterval.duration < .milliseconds(100) {
            throw ValidationError("--lag-interval must be 0s (never) or at least 100ms, got \(lagInterval)")
        }
        _ = try properties
    }

    func run() async throws {
        let connection = try cluster.connect()
        defer { connection.close() }
        if connection.embedded != nil {
            // An empty embedded cluster has no topic yet: create it so the consumer can subscribe.
            try connection.createTopic(topic, partitions: 1)
            printError(
                "rkafka consume: no --bootstrap-servers given, reading from an empty embedded cluster at "
                    + "\(connection.bootstrapServers) (topic \(topic) created with 1 partition): use `rkafka broker` and "
                    + "pass its address to read real data")
        }
        // stdout closed by its reader must fail the write (and stop before committing), not kill the process.
        signal(SIGPIPE, SIG_IGN)

        let reportsLag = lagInterval.duration > .zero
        let settings = Self.settings(
            bootstrapServers: connection.bootstrapServers, group: group, fromBeginning: fromBeginning,
            properties: try properties
        )
        .withStatisticsInterval(reportsLag ? min(lagInterval.duration, .seconds(1)) : nil)
        let logger = Logger(label: "rkafka.consume") { StreamLogHandler.standardError(label: $0) }
        let writer = OutputWriter()
        let run = ConsumeRun(writer: writer, format: format.lineFormat, limit: count)

        let graph = Self.graph(settings, topic: topic, committable: group != nil, run: run, logger: logger)
        let service = KafkaStreamService(graph)
        let lagReporter =
            reportsLag ? Task { await Self.reportLag(of: service.control, run: run, every: lagInterval.duration) } : nil
        defer { lagReporter?.cancel() }
        let quiet = Logger(label: "rkafka.consume.lifecycle") { _ in SwiftLogNoOpLogHandler() }
        let serviceGroup = ServiceGroup(
            configuration: .init(
                services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: quiet))
        do {
            try await serviceGroup.run()
        } catch {
            printError("rkafka consume: stopped after \(run.written) record(s): \(error)")
            throw ExitCode.failure
        }
        printError(
            "rkafka consume: \(run.written) record(s) written"
                + (group.map { ", offsets committed for group \($0)" } ?? ""))
    }
}

extension ConsumeCommand {
    /// Prints written records and lag to stderr every `interval` until cancelled (a periodic
    /// display: the stream does not wait for it).
    static func reportLag(of control: ConsumerControl, run: ConsumeRun, every interval: Duration) async {
        var lag = ProgressLag()
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            guard !Task.isCancelled else { return }
            let shown = lag.update(control.metrics)?.text ?? "lag - (joining the group)"
            printError("rkafka consume: \(run.written) written, \(shown)")
        }
    }

    /// Consumer settings for `group` (a throw-away group when nil); nothing is auto-committed:
    /// with a group, offsets are committed only after their records are written. `properties`
    /// (from --property) come first, so the fixed ones win; an invalid one fails the start
    /// with librdkafka's message.
    static func settings(
        bootstrapServers: String, group: String?, fromBeginning: Bool, properties: [String: String] = [:]
    ) -> ConsumerSettings<KafkaBytes?, KafkaBytes?> {
        ConsumerSettings<KafkaBytes?, KafkaBytes?>(keyDeserializer: .optionalBytes, valueDeserializer: .optionalBytes)
            .withProperties(properties)
            .withBootstrapServers(bootstrapServers)
            .withGroupId(group ?? "rkafka-consume-\(UUID().uuidString)")
            .withProperty("auto.offset.reset", fromBeginning ? "earliest" : "latest")
            .withProperty("enable.auto.commit", "false")
    }

    /// The consume stream: records in batches (up to 1000, or what arrived in 50 ms)
    /// through `run`, which writes, flushes and, when `committable`, commits them.
    /// Back-pressure: the source is not pulled while a batch is being written or committed.
    static func graph(
        _ settings: ConsumerSettings<KafkaBytes?, KafkaBytes?>, topic: String, committable: Bool, run: ConsumeRun,
        logger: Logger = Logger(label: "rkafka.consume")
    ) -> RunnableGraph<ConsumerControl, Void> {
        if committable {
            let source = Consumer.committableSource(settings, subscription: .topics(topic), logger: logger)
            let control = source.materialized
            return
                source
                .groupedWithin(count: 1000, duration: .milliseconds(50))
                .map { batch in
                    try await run.write(batch.map(\.record), offsets: batch.map(\.committableOffset), control: control)
                }
                .to(Sinks.ignore())
        }
        let source = Consumer.plainSource(settings, subscription: .topics(topic), logger: logger)
        let control = source.materialized
        return
            source
            .groupedWithin(count: 1000, duration: .milliseconds(50))
            .map { batch in try await run.write(batch, offsets: [], control: control) }
            .to(Sinks.ignore())
    }
}

/// The per-batch step of `rkafka consume`: write, flush, then commit.
final class ConsumeRun: Sendable {
    private let writer: OutputWriter
    private let format: RecordLineFormat
    private let limit: Int?
    /// Records taken for writing (what the limit counts).
    private let taken = Mutex(0)
    /// Records flushed to the output.
    private let flushed = Atomic<Int>(0)

    init(writer: OutputWriter, format: RecordLineFormat, limit: Int?) {
        self.writer = writer
        self.format = format
        self.limit = limit
    }

    /// Records written (flushed) so far.
    var written: Int { flushed.load(ordering: .acquiring) }

    /// Writes `records` (up to the limit), flushes them, then commits the offsets of
    /// those written. Once the limit is reached the source is stopped; records after
    /// it are neither written nor committed.
    func write(_ records: [RecordLine.Record], offsets: [CommittableOffset], control: ConsumerControl) async throws {
        let (take, total) = taken.withLock { taken -> (Int, Int) in
            let take = limit.map { min(records.count, max(0, $0 - taken)) } ?? records.count
            taken += take
            return (take, taken)
        }
        guard take > 0 else { return }
        let format = format
        writer.append { buffer in
            for record in records.prefix(take) { RecordLine.append(record, format: format, to: &buffer) }
        }
        try await writer.flush()
        flushed.add(take, ordering: .releasing)
        if !offsets.isEmpty {
            do {
                try await CommittableOffsetBatch(offsets.prefix(take)).commit()
            } catch {
                // Partitions revoked before this batch's commit: their next owner reads those
                // records again (at-least-once); the other partitions' offsets were committed.
                guard error.kind == .notAssigned else { throw error }
            }
        }
        if let limit, total >= limit { control.stop() }
    }
}
