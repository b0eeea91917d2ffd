import ArgumentParser
import Foundation
import ReactiveKafka

/// `rkafka bench`: each scenario's connector version next to its raw-librdkafka baseline,
/// in the same process run, on the same cluster.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure the connector against raw librdkafka.",
        discussion: """
            Kafka scenarios: \(BenchScenarios.kafka.map(\.name).joined(separator: ", ")), \(RebalanceBench.name) \
            (a member joining a group: pause, time to first record, duplicates, per assignment strategy), and \
            \(LatencyBench.name) (end-to-end latency of the at-least-once pipeline at an offered rate next to a raw \
            relay loop's: p50, p99, p99.9, max; --rate, --linger-ms, --point-seconds; --messages does not apply), and \
            \(ParallelBench.name) (Consumer.parallelSource ordered by key at maxConcurrency 1,000 against \
            committablePartitionedSource with one record in flight per partition; 12 partitions, 10,000 keys, 1 ms of \
            work a record; at most 200,000 records, the baseline 24,000). \
            Stateful: table-join (a source left-joined with a 10,000-row KafkaTable against a raw consume loop \
            with a dictionary look-up), table-lookup (table[key] in a restored in-memory table against the same \
            look-ups in a Swift dictionary; --messages look-ups, no record moves), event-sourced-recovery \
            (EventSourced.flow recovering a changelog of --messages events over 10,000 keys, seeded first: the \
            recovery timed by the flow's recover_state metric, the flow's start to the outcomes of one command per \
            partition and the same over an empty changelog in the notes, next to a raw librdkafka read of the \
            changelog). \
            StreamKit scenarios (streamkit-…) compare operators to hand-written loops; streamkit-windowed-count \
            (tumbling 1 s windows, 10,000 keys) also checks how many windows are open at once against its bound. \
            Without --bootstrap-servers every Kafka scenario gets a fresh embedded cluster; \
            consuming scenarios first seed a topic (not measured). Consumers are timed from \
            their first record. peak RSS is the whole process's during the measured phase, \
            embedded cluster included; allocs/msg counts every malloc of the process in it, \
            and cpu/msg its CPU time (all threads), which other load on the machine \
            hardly changes.
            """
    )

    @OptionGroup var cluster: ClusterOptions

    @OptionGroup(title: "Latency scenario") var latency: LatencyOptions

    @Option(
        help: """
            Metrics backend the connector records into: none (swift-metrics' no-op, what an application that bootstraps \
            nothing gets; the connector's metrics are on by default either way) or prometheus (swift-prometheus bootstrapped).
            """)
    var metrics: BenchMetricsBackend = .none

    @Flag(help: "One JSON object a line per scenario instead of a table.")
    var json = false

    @Option(help: "Messages per scenario.")
    var messages: Int = 1_000_000

    @Option(help: "Value size in bytes.")
    var size: Int = 100

    @Option(
        help:
            "Partitions of every benchmark topic. Default: 64, and \(LatencyBench.defaultPartitions) for \(LatencyBench.name)."
    )
    var partitions: Int?

    /// The partitions of the throughput scenarios' topics.
    var topicPartitions: Int { partitions ?? 64 }

    /// Whether a chosen Kafka scenario moves `--messages` messages (rebalance and latency run for a time, at a rate).
    var movesMessages: Bool { scenarios.contains { BenchScenarios.kafkaScenario(named: $0) != nil } }

    @Option(
        help: """
            Runs of each Kafka scenario (each with its own baseline and fresh topics); the line shown is the run with the median \
            ratio, with every run's ratio (latency: per linger.ms and rate, the median Δp99 with every run's).
            """)
    var `repeat`: Int = 1

    @Option(
        name: .customLong("scenario"),
        help: ArgumentHelp("Scenario to run (repeatable, or a comma-separated list). Default: all.", valueName: "name")
    )
    var scenarioArguments: [String] = []

    /// The scenarios to run, in the order given, without duplicates.
    var scenarios: [String] {
        let named = scenarioArguments.flatMap {
            $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        .filter { !$0.isEmpty }
        var seen = Set<String>()
        return (named.isEmpty ? BenchScenarios.allNames : named).filter { seen.insert($0).inserted }
    }

    func validate() throws {
        guard messages >= 1 else { throw ValidationError("--messages must be at least 1, got \(messages)") }
        guard size >= 0 else { throw ValidationError("--size must not be negative, got \(size)") }
        if let partitions, partitions < 1 {
            throw ValidationError("--partitions must be at least 1, got \(partitions)")
        }
        guard `repeat` >= 1 else { throw ValidationError("--repeat must be at least 1, got \(`repeat`)") }
        let known = BenchScenarios.allNames
        for name in scenarios where !known.contains(name) {
            throw ValidationError("unknown scenario \"\(name)\"; known: \(known.joined(separator: ", "))")
        }
        if scenarios.contains(LatencyBench.name), size < LatencyStamp.size {
            throw ValidationError(
                "--size must be at least \(LatencyStamp.size) for the \(LatencyBench.name) scenario (each value carries its send time), got \(size)"
            )
        }
        let perPartitionBytes = Double(messages) * Double(size) / Double(topicPartitions)
        if cluster.bootstrapServers == nil, movesMessages, perPartitionBytes > 4_000_000 {
            throw ValidationError(
                "\(messages) × \(size) B over \(topicPartitions) partitions is \(Int(perPartitionBytes / 1e6)) MB a partition, "
                    + "but the embedded cluster keeps at most 5 MB a partition: raise --partitions or lower --messages/--size"
            )
        }
    }

    func run() async throws {
        let parameters = BenchParameters(messages: messages, size: size, partitions: topicPartitions)
        if !AllocationCounterCheck.isWorking {
            let why = allocationCounterAvailable ? "" : " (a sanitizer build: the sanitizer owns malloc)"
            printError(
                "rkafka bench: the allocation counter does not count in this build\(why); allocs/msg is left out")
        }
        if !json, movesMessages || scenarios.contains(where: { $0.hasPrefix("streamkit-") }) {
            print("rkafka bench: \(messages) messages of \(size) B over \(topicPartitions) partitions")
        }
        let registry = metrics.bootstrap()
        if !json { print("rkafka bench: metrics backend: \(metrics.rawValue)") }
        var failures = 0
        for name in scenarios {
            do {
                let line: BenchLine?
                if name.hasPrefix("streamkit-") {
                    line = try await StreamKitBenchShim.run(name, elements: messages)
                } else if name == RebalanceBench.name {
                    line = nil // one line per assignment strategy, printed as each finishes
                    try await RebalanceBench.run(cluster: cluster, partitions: topicPartitions, size: size, json: json)
                } else if name == ParallelBench.name {
                    line = nil // its own line: the parallel source next to the partition-bound baseline
                    try await ParallelBench.run(cluster: cluster, messages: messages, json: json)
                } else if name == LatencyBench.name {
                    line = nil // one line per linger.ms and rate, printed once every run is done
                    try await LatencyBench.run(
                        cluster: cluster, size: size, partitions: partitions ?? LatencyBench.defaultPartitions,
                        plan: latency.plan,
                        repeat: `repeat`, json: json)
                } else if let scenario = BenchScenarios.kafkaScenario(named: name) {
                    var runs: [BenchLine] = []
                    for _ in 0..<`repeat` { runs.append(try await runKafka(scenario, parameters)) }
                    line = BenchLine.median(of: runs)
                } else {
                    line = nil
                }
                if let line {
                    print(json ? line.jsonLine() : line.humanLine())
                    // What the scenario verified and measured besides the rates (open windows, recovery phases).
                    if !json, let notes = line.notes { print("    " + notes) }
                    fflush(nil) // all output streams: stdout is a C global Swift 6 will not touch
                }
            } catch {
                failures += 1
                printError("rkafka bench: \(name) failed: \(error)")
            }
        }
        if let registry { printError("rkafka bench: " + BenchMetricsBackend.summary(ofPage: registry.emitToString())) }
        if failures > 0 { throw ExitCode(1) }
    }

    /// Seeds, runs the baseline, then the connector version.
    func runKafka(_ scenario: KafkaBenchScenario, _ parameters: BenchParameters) async throws -> BenchLine {
        let connection = try cluster.connect()
        defer { connection.close() }
        let env = try BenchEnvironment.make(scenario: scenario.name, parameters: parameters, connection: connection)
        if let seed = scenario.seed {
            progress("\(scenario.name): seeding \(env.inputTopic)")
            try await onDedicatedThread("rkafka-bench-seed") { try seed(env) }
        } else if scenario.consumesSeededInput {
            progress("\(scenario.name): seeding \(env.inputTopic)")
            _ = try await onDedicatedThread("rkafka-bench-seed") {
                try RawBaselines.produce(env, topic: env.inputTopic)
            }
        }
        progress("\(scenario.name): baseline")
        let baseline = try await onDedicatedThread("rkafka-bench-baseline") { try scenario.baseline(env) }

        progress("\(scenario.name): connector")
        resetPeakRSS()
        let connectorRun = try await scenario.connector.run(env)

        var notes = ["baseline: " + (baseline.notes.isEmpty ? "ok" : baseline.notes.joined(separator: "; "))]
        if !connectorRun.notes.isEmpty { notes.append("connector: " + connectorRun.notes.joined(separator: "; ")) }
        return BenchLine(
            scenario: scenario.name,
            messages: connectorRun.messages,
            msgs_per_sec: connectorRun.messagesPerSecond,
            baseline_msgs_per_sec: baseline.messagesPerSecond,
            ratio: baseline.messagesPerSecond > 0 ? connectorRun.messagesPerSecond / baseline.messagesPerSecond : 0,
            peak_rss_mb: connectorRun.peakRSSMegabytes,
            allocs_per_msg: connectorRun.allocationsPerMessage,
            baseline_allocs_per_msg: baseline.allocationsPerMessage,
            baseline: scenario.baselineDescription,
            notes: notes.joined(separator: " | "),
            baseline_peak_rss_mb: baseline.peakRSSMegabytes,
            cpu_us_per_msg: connectorRun.cpuMicrosecondsPerMessage,
            baseline_cpu_us_per_msg: baseline.cpuMicrosecondsPerMessage
        )
    }

    private func progress(_ message: String) {
        if !json { printError("… " + message) }
    }
}
