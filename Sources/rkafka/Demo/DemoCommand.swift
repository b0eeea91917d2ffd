import ArgumentParser
import Foundation
import FraudDetection
import Logging
import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Synchronization

/// `rkafka demo`: the at-least-once pipeline end to end, interrupted and
/// restarted, with the output checked against the input.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the at-least-once pipeline on sample data, interrupt it, restart it, and verify the output.",
        discussion: """
            On an embedded 3-broker cluster (or --bootstrap-servers) it produces --events JSON orders \
            to demo-input, runs consume → enrich → produce → commit into demo-output with live \
            throughput and lag (records and seconds), drains it mid-way (drainAndShutdown), restarts it from the committed \
            offsets, then reads demo-output back and compares it with the input. The last line is \
            `summary: consumed=N produced=N committed=N lost=L duplicated=D`; the exit code is 0 \
            when nothing was lost.
            """
    )

    @OptionGroup var cluster: ClusterOptions

    @Option(help: "How many sample events to produce.")
    var events: Int = 200_000

    @Flag(
        help:
            "Run the stateful fraud-detection example instead (Examples/fraud-detection): table, pattern, windows, exactly-once outputs, a kill and a restart, checked against a reference."
    )
    var stateful = false

    @Option(help: "With --stateful: how many payments to generate (a quarter as many logins).")
    var payments: Int = 6_000

    /// The child process of `--stateful`'s first run: BOOTSTRAP OUTPUTS (see StatefulDemo).
    @Option(name: .customLong("stateful-detector"), parsing: .upToNextOption, help: .hidden)
    var statefulDetector: [String] = []

    func validate() throws {
        if !statefulDetector.isEmpty {
            guard statefulDetector.count == 2, Int(statefulDetector[1]) != nil else {
                throw ValidationError("--stateful-detector takes BOOTSTRAP_SERVERS OUTPUTS, got \(statefulDetector)")
            }
            return
        }
        if stateful {
            if cluster.bootstrapServers != nil {
                throw ValidationError(
                    "--stateful runs on an embedded cluster it starts itself (it creates its topics through the mock cluster); drop --bootstrap-servers"
                )
            }
            if payments < 100 || payments > 1_000_000 {
                throw ValidationError("--payments must be between 100 and 1,000,000, got \(payments)")
            }
            return
        }
        // The mock broker keeps at most 5 MB per partition: partitions scale with the data set.
        if events < 100 { throw ValidationError("--events must be at least 100, got \(events)") }
        if events > 5_000_000 {
            throw ValidationError(
                "--events must be at most 5,000,000 (the embedded broker keeps data in memory), got \(events)")
        }
    }

    func run() async throws {
        if !statefulDetector.isEmpty {
            try await FraudScenario.runDetectorThenKillThisProcess(
                bootstrapServers: statefulDetector[0], afterOutputs: Int(statefulDetector[1]) ?? 0)
            return
        }
        if stateful {
            try await StatefulDemo.run(payments: payments, executable: StatefulDemo.thisExecutable)
            return
        }
        let started = ContinuousClock.now
        let connection = try cluster.connect(brokers: 3)
        defer { connection.close() }
        // Roughly 100 bytes an output record: 25,000 per partition stays well under the mock's 5 MB.
        let partitions = max(12, (events + 24_999) / 25_000)
        let suffix = connection.embedded == nil ? "-" + UUID().uuidString.prefix(8).lowercased() : ""
        let topics = (input: "demo-input" + suffix, output: "demo-output" + suffix)
        let group = "rkafka-demo" + suffix
        if let kafka = connection.embedded {
            try kafka.createTopic(topics.input, partitions: partitions, replicationFactor: 3)
            try kafka.createTopic(topics.output, partitions: partitions, replicationFactor: 3)
            say(
                "cluster: embedded, 3 brokers at \(connection.bootstrapServers); \(topics.input) and \(topics.output): \(partitions) partitions, replication 3"
            )
        } else {
            for topic in [topics.input, topics.output] where try !connection.createTopic(topic, partitions: partitions)
            {
                printError(
                    "rkafka demo: the cluster cannot create topics remotely; \(topic) is auto-created with its default partition count"
                )
            }
            say("cluster: \(connection.bootstrapServers); topics \(topics.input), \(topics.output)")
        }
        let environment = DemoEnvironment(
            bootstrapServers: connection.bootstrapServers, topics: topics, group: group, events: events,
            logger: Logger(label: "rkafka.demo") { StreamLogHandler.standardError(label: $0) })

        try await environment.produceInput()
        let target = events / 2
        say("run 1: consume → enrich → produce → commit; draining at \(target) processed (\(target * 100 / events)%)")
        let first = try await environment.runPipeline(run: 1, drainAt: target)
        let committedAfterDrain = try await environment.committedInputOffsets()
        say(
            "run 1: drained: consumed=\(first.consumed) produced=\(first.produced) committed=\(committedAfterDrain) "
                + "(\(committedAfterDrain * 100 / Int64(events))%) in \(first.elapsed.seconds) s")
        let remaining = events - Int(committedAfterDrain)
        say("run 2: restart from the committed offsets, \(remaining) left")
        let second = try await environment.runPipeline(run: 2, drainAt: remaining)
        let committed = try await environment.committedInputOffsets()
        say(
            "run 2: done: consumed=\(second.consumed) produced=\(second.produced) committed=\(committed) in \(second.elapsed.seconds) s"
        )

        let check = try await environment.verifyOutput()
        say(
            "verify: read \(check.records) records from \(topics.output) in \(check.elapsed.seconds) s; "
                + "\(events - check.tally.lost) of \(events) input ids present, unexpected=\(check.tally.unexpected)")
        say("total time \((ContinuousClock.now - started).seconds) s")
        say(
            "summary: consumed=\(first.consumed + second.consumed) produced=\(check.records) committed=\(committed) "
                + "lost=\(check.tally.lost) duplicated=\(check.tally.duplicated)")
        if check.tally.lost > 0 { throw ExitCode.failure }
    }
}

/// Writes a demo line to stdout at once (the demo's log).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

extension Duration {
    /// Seconds with one decimal, for messages.
    var seconds: String {
        let (s, atto) = components
        return String(format: "%.1f", Double(s) + Double(atto) / 1e18)
    }
}
