import AsyncAlgorithms
import Foundation
import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit

/// The whole example on an embedded cluster: write the input, run the detector, kill it
/// half-way, restart it, then read its outputs with `read_committed` and compare them with
/// ``FraudInput/expectedAlerts()`` and ``FraudInput/expectedSpend()``.
///
/// The kill falls right after a transaction has committed: the run stops there without
/// draining anything, losing the windows and partial matches it held in memory. It does not
/// fall inside an open transaction because the embedded cluster (librdkafka's mock) shows the
/// records of aborted transactions to `read_committed` readers, which a Kafka broker hides: a
/// verification of such a kill here would report the aborted records as duplicates.
public struct FraudScenario: Sendable {
    /// The input.
    public var input: FraudInput
    /// The topics.
    public var topics = FraudTopics()

    /// What the run found.
    public struct Report: Sendable {
        /// Logins, payments and profiles written.
        public var logins, payments, profiles: Int
        /// The checkpoint of the last transaction before the kill (the restart point).
        public var killedAfter: FraudCheckpoint
        /// What the restarted detector read from the checkpoints topic.
        public var resumedFrom: FraudCheckpoint
        /// The last checkpoint of the restarted run.
        public var final: FraudCheckpoint
        /// The alerts read back against the reference.
        public var alerts: Comparison
        /// The window results read back against the reference.
        public var windows: Comparison

        /// One line: what went in, what came out, where the restart was, and the verdict.
        public var summary: String {
            let verdict = verified ? "equal to the reference" : "NOT equal to the reference"
            return "summary: inputs=\(logins + payments) alerts=\(alerts.read)/\(alerts.expected) "
                + "windows=\(windows.read)/\(windows.expected) "
                + "restart=after transaction \(killedAfter.transactions) (\(killedAfter.alerts) alerts, \(killedAfter.windows) windows) "
                + "missing=\(alerts.missing + windows.missing) duplicated=\(alerts.duplicated + windows.duplicated) "
                + "unexpected=\(alerts.unexpected + windows.unexpected): \(verdict)"
        }

        /// The outputs equal the reference and the restart resumed where the kill left off.
        public var verified: Bool {
            alerts.isEqual && windows.isEqual && resumedFrom == killedAfter
        }
    }

    /// A multiset of outputs read back, against the reference.
    public struct Comparison: Sendable, Equatable {
        /// Records the reference has.
        public var expected = 0
        /// Records read back.
        public var read = 0
        /// Reference records with no output.
        public var missing = 0
        /// Extra copies of reference records.
        public var duplicated = 0
        /// Outputs the reference does not have.
        public var unexpected = 0

        /// The same multiset.
        public var isEqual: Bool { missing == 0 && duplicated == 0 && unexpected == 0 && read == expected }

        /// `read` against `expected`, as multisets.
        init<T: Hashable>(expected reference: [T], read outputs: [T]) {
            var counts: [T: Int] = [:]
            for item in reference { counts[item, default: 0] += 1 }
            expected = reference.count
            read = outputs.count
            for item in outputs {
                let left = counts[item]
                switch left {
                case nil: unexpected += 1
                case 0?: duplicated += 1
                case let n?: counts[item] = n - 1
                }
            }
            missing = counts.values.reduce(0, +)
        }
    }

    /// How long a run of the detector may take before the scenario gives up on it (``StreamKitError/askTimeout(_:)``).
    static let runLimit: Duration = .seconds(120)

    /// Thrown by the first run's commit hook: the kill.
    struct Killed: Error {
        var after: FraudCheckpoint
    }

    /// A scenario over `input`.
    public init(input: FraudInput) {
        self.input = input
    }

    /// How the first run dies.
    public enum Kill: Sendable {
        /// The first run is a child process, `executable` with `arguments` followed by the
        /// bootstrap servers and the number of outputs to pass; it must call
        /// ``FraudScenario/runDetectorThenKillThisProcess(bootstrapServers:afterOutputs:)``
        /// with them, which sends itself SIGKILL: no flush, no close, nothing drained.
        case childProcess(executable: URL, arguments: [String])
        /// In this process: the first run fails with an error thrown right after a commit
        /// (its clients are then closed, as a crash would not do).
        case inProcess
    }

    /// Runs it on `kafka`, killing the first run as `kill` says, saying what happens through `say`.
    public func run(on kafka: EmbeddedKafka, kill: Kill, say: @escaping @Sendable (String) -> Void) async throws
        -> Report
    {
        try await prepare(on: kafka)
        let alerts = input.expectedAlerts()
        let spend = input.expectedSpend()
        say(
            "input: \(input.logins.count) logins, \(input.payments.count) payments, \(input.profiles.count) profiles; "
                + "the reference expects \(alerts.count) alerts and \(spend.count) minute windows")

        let detector = FraudDetector(bootstrapServers: kafka.bootstrapServers, topics: topics)
        let half = (alerts.count + spend.count) / 2
        let killedAfter: FraudCheckpoint
        switch kill {
        case .childProcess(let executable, let arguments):
            say(
                "run 1: the detector starts in a child process, which SIGKILLs itself after the first commit past \(half) outputs"
            )
            killedAfter = try await Self.runKilledChild(
                executable, arguments + [kafka.bootstrapServers, String(half)])
        case .inProcess:
            say("run 1: the detector starts; its run is abandoned after the first commit past \(half) outputs")
            do {
                _ = try await ask(timeout: Self.runLimit) {
                    try await detector.run { checkpoint in
                        if checkpoint.alerts + checkpoint.windows >= half { throw Killed(after: checkpoint) }
                    }
                }
                throw FraudScenarioError("run 1 ended without being killed: fewer outputs than expected")
            } catch let killed as Killed {
                killedAfter = killed.after
            }
        }
        say(
            "run 1: killed after transaction \(killedAfter.transactions): \(killedAfter.alerts) alerts and "
                + "\(killedAfter.windows) windows committed; its open windows and partial matches are lost")

        let second = try await ask(timeout: Self.runLimit) { try await detector.run() }
        say(
            "run 2: restarted from the checkpoint (\(second.resumedFrom.alerts) alerts, \(second.resumedFrom.windows) windows), "
                + "replayed \(second.inputRecords) input records to rebuild its state, committed up to "
                + "\(second.committed.alerts) alerts and \(second.committed.windows) windows in \(second.committed.transactions - killedAfter.transactions) transactions"
        )

        let readAlerts = try await readBack(topics.alerts, as: FraudAlert.self, kafka.bootstrapServers)
        let readSpend = try await readBack(topics.spend, as: MinuteSpend.self, kafka.bootstrapServers)
        return Report(
            logins: input.logins.count, payments: input.payments.count, profiles: input.profiles.count,
            killedAfter: killedAfter, resumedFrom: second.resumedFrom, final: second.committed,
            alerts: Comparison(expected: alerts, read: readAlerts),
            windows: Comparison(expected: spend, read: readSpend))
    }

    /// Creates the topics (one partition each) and writes the input.
    func prepare(on kafka: EmbeddedKafka) async throws {
        for topic in [topics.logins, topics.payments, topics.profiles, topics.alerts, topics.spend, topics.checkpoints]
        {
            try kafka.createTopic(topic, partitions: 1)
        }
        try await produceInput(kafka.bootstrapServers)
    }

    /// Writes the profiles, then the logins and payments with their event times as timestamps.
    func produceInput(_ bootstrapServers: String) async throws {
        let settings = ProducerSettings(keySerializer: .string, valueSerializer: .string)
            .withBootstrapServers(bootstrapServers)
        var records: [ProducerRecord<String, String>] = []
        for (customer, profile) in input.profiles.sorted(by: { $0.key < $1.key }) {
            records.append(ProducerRecord(topic: topics.profiles, key: customer, value: try json(profile)))
        }
        for (topic, events) in [(topics.logins, input.logins), (topics.payments, input.payments)] {
            for event in events {
                records.append(
                    ProducerRecord(
                        topic: topic, key: event.activity.customer, value: try json(event.activity),
                        timestamp: KafkaTimestamp(milliseconds: event.time)))
            }
        }
        try await Source(records.async).run(into: Producer.plainSink(settings))
    }

    /// Every record of `topic` (one partition) as a `read_committed` reader sees it.
    func readBack<T: Decodable & Sendable>(_ topic: String, as type: T.Type, _ bootstrapServers: String)
        async throws -> [T]
    {
        let settings = ConsumerSettings(keyDeserializer: .string, valueDeserializer: .json(T.self))
            .withBootstrapServers(bootstrapServers)
            .withProperty("isolation.level", "read_committed")
        let partition = TopicPartition(topic, 0)
        let metadata = try MetadataClient(settings)
        let end = try await metadata.endOffsets([partition])[partition] ?? 0
        metadata.close()
        // The mock writes no transaction markers, so `end` counts records; the time bound ends
        // the read on a broker, whose markers take offsets no reader receives.
        var values: [T] = []
        for try await record in Consumer.plainSource(settings, subscription: .assignmentWithOffset([partition: 0]))
            .take(Int(end)).takeWithin(.seconds(30))
        {
            values.append(record.value)
        }
        return values
    }
}

/// The scenario could not run as planned.
public struct FraudScenarioError: Error, CustomStringConvertible {
    /// What went wrong.
    public var description: String

    init(_ description: String) { self.description = description }
}
