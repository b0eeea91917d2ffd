import Foundation
import FraudDetection
import ReactiveKafkaTestKit

// The fraud-detection example on an embedded cluster: logins and payments in, customer
// profiles in a table, alerts and per-minute spend out, exactly once across a kill and a
// restart, checked against a reference computed from the input. `rkafka demo --stateful`
// runs the same scenario.
let arguments = CommandLine.arguments
if arguments.count == 4, arguments[1] == "detector" {
    // The first run, in a child process started below: it kills itself mid-way.
    try await FraudScenario.runDetectorThenKillThisProcess(
        bootstrapServers: arguments[2], afterOutputs: Int(arguments[3]) ?? 0)
    exit(0)
}
let kafka = try EmbeddedKafka(brokers: 1)
let scenario = FraudScenario(input: FraudInput(customers: 40, payments: 6_000, minutes: 30))
let this = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
let report = try await scenario.run(
    on: kafka, kill: .childProcess(executable: Bundle.main.executableURL ?? this, arguments: ["detector"])
) { print($0) }
print(report.summary)
kafka.stop()
if !report.verified { exit(1) }
