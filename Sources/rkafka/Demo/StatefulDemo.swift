import ArgumentParser
import Foundation
import FraudDetection
import ReactiveKafkaTestKit

/// `rkafka demo --stateful`: the fraud-detection example (Examples/fraud-detection) on an
/// embedded cluster, killed and restarted mid-way, its outputs checked against a reference.
enum StatefulDemo {
    /// This program: the first run is `rkafka demo --stateful-detector …` in a child process.
    static var thisExecutable: URL {
        #if os(Linux)
            URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        #else
            Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])
        #endif
    }

    /// Runs the scenario with `payments` payments, the first run as a child process of
    /// `executable` (rkafka); fails with exit code 1 when the outputs differ from the reference.
    static func run(payments: Int, executable: URL) async throws {
        let started = ContinuousClock.now
        let kafka = try EmbeddedKafka(brokers: 3)
        defer { kafka.stop() }
        say("cluster: embedded, 3 brokers at \(kafka.bootstrapServers)")
        let scenario = FraudScenario(input: FraudInput(customers: 40, payments: payments, minutes: 30))
        let report = try await scenario.run(
            on: kafka, kill: .childProcess(executable: executable, arguments: ["demo", "--stateful-detector"])
        ) { say($0) }
        say(
            "verify: read back with read_committed: \(report.alerts.read) alerts, \(report.windows.read) windows; "
                + "the restart resumed from (\(report.resumedFrom.alerts) alerts, \(report.resumedFrom.windows) windows)"
        )
        say(
            "note: the kill (SIGKILL) falls right after a commit; the embedded cluster shows aborted transactions' records "
                + "to read_committed readers (a Kafka broker hides them), so a kill inside a transaction cannot be verified here"
        )
        say("total time \((ContinuousClock.now - started).seconds) s")
        say(report.summary)
        if !report.verified { throw ExitCode.failure }
    }
}
