import ArgumentParser
import ReactiveKafkaTestKit
import Testing

@testable import FraudDetection
@testable import rkafka

/// The fraud-detection example (issue 15.6) on the embedded cluster: killed mid-way and
/// restarted, its `read_committed` outputs must equal the reference computed from the input.
@Suite(.serialized, .timeLimit(.minutes(2))) struct StatefulDemoTests {
    static let input = FraudInput(customers: 30, payments: 3_000, minutes: 20)

    @Test func theReferenceHasAlertsAndWindowsToCheck() {
        let alerts = Self.input.expectedAlerts()
        let windows = Self.input.expectedSpend()
        #expect(alerts.count > 20, "the pattern must fire often enough for a mid-way kill to split the alerts")
        #expect(windows.count > 200)
        // Each alert's payment is over its customer's limit, after a login from a country not in the profile.
        for alert in alerts {
            guard let profile = Self.input.profiles[alert.customer] else {
                Issue.record("alert for \(alert.customer), who has no profile")
                continue
            }
            #expect(!profile.countries.contains(alert.country) && alert.amount > profile.limit)
            #expect(alert.paymentTime > alert.loginTime && alert.paymentTime - alert.loginTime <= 300_000)
        }
    }

    @Test func aDetectorKilledMidWayAndRestartedWritesEachAlertAndWindowOnce() async throws {
        let kafka = try EmbeddedKafka()
        let scenario = FraudScenario(input: Self.input)
        let report = try await scenario.run(
            on: kafka,
            kill: .childProcess(executable: try RKafkaExecutable.url(), arguments: ["demo", "--stateful-detector"])
        ) { _ in }
        let total = report.alerts.expected + report.windows.expected
        let atKill = report.killedAfter.alerts + report.killedAfter.windows
        #expect(atKill > 0 && atKill < total, "the kill falls mid-way: \(atKill) of \(total) outputs committed")
        #expect(report.resumedFrom == report.killedAfter, "the restart resumes from the last committed checkpoint")
        #expect(report.alerts.isEqual, "alerts: \(report.alerts)")
        #expect(report.windows.isEqual, "windows: \(report.windows)")
        #expect(report.final.alerts == report.alerts.expected && report.final.windows == report.windows.expected)
        #expect(report.verified)

        // A third run finds everything committed: it replays the input and writes nothing.
        let detector = FraudDetector(bootstrapServers: kafka.bootstrapServers, topics: scenario.topics)
        let again = try await detector.run()
        #expect(again.resumedFrom == report.final && again.committed == report.final)
        let alerts = try await scenario.readBack(scenario.topics.alerts, as: FraudAlert.self, kafka.bootstrapServers)
        #expect(alerts.count == report.alerts.expected)

        // The check catches doubles: a detector under another transactional id (no checkpoint)
        // writes every alert again.
        let stranger = FraudDetector(
            bootstrapServers: kafka.bootstrapServers, topics: scenario.topics, transactionalId: "another-detector")
        _ = try await stranger.run()
        let doubled = try await scenario.readBack(scenario.topics.alerts, as: FraudAlert.self, kafka.bootstrapServers)
        let comparison = FraudScenario.Comparison(expected: Self.input.expectedAlerts(), read: doubled)
        #expect(!comparison.isEqual && comparison.duplicated == report.alerts.expected && comparison.missing == 0)
    }

    struct Stop: Error {}

    /// Killed a third of the way, then again right after the restarted run's first commit, then
    /// run to the end: checkpoints never count back and the outputs equal the reference.
    /// (Whether the first commit after a restart finds one kind still skipping depends on the
    /// interleaving; `aCheckpointNeverCountsBelowWhatIsCommitted` checks that case directly.)
    @Test func aDetectorKilledTwiceNeverCountsBackAndWritesEachOutputOnce() async throws {
        let kafka = try EmbeddedKafka()
        let scenario = FraudScenario(input: Self.input)
        try await scenario.prepare(on: kafka)
        let expectedAlerts = Self.input.expectedAlerts()
        let expectedSpend = Self.input.expectedSpend()
        let detector = FraudDetector(bootstrapServers: kafka.bootstrapServers, topics: scenario.topics)
        let third = (expectedAlerts.count + expectedSpend.count) / 3
        await #expect(throws: Stop.self) {
            _ = try await detector.run { if $0.alerts + $0.windows >= third { throw Stop() } }
        }
        let first = try await detector.lastCheckpoint()
        await #expect(throws: Stop.self) {
            _ = try await detector.run { checkpoint in
                #expect(checkpoint.alerts >= first.alerts && checkpoint.windows >= first.windows)
                throw Stop()
            }
        }
        let second = try await detector.lastCheckpoint()
        #expect(second.transactions == first.transactions + 1)
        #expect(second.alerts >= first.alerts && second.windows >= first.windows)
        let last = try await detector.run()
        #expect(last.resumedFrom == second)
        let alerts = try await scenario.readBack(scenario.topics.alerts, as: FraudAlert.self, kafka.bootstrapServers)
        let spend = try await scenario.readBack(scenario.topics.spend, as: MinuteSpend.self, kafka.bootstrapServers)
        let alertComparison = FraudScenario.Comparison(expected: expectedAlerts, read: alerts)
        let spendComparison = FraudScenario.Comparison(expected: expectedSpend, read: spend)
        #expect(alertComparison.isEqual, "alerts: \(alertComparison)")
        #expect(spendComparison.isEqual, "windows: \(spendComparison)")
    }

    @Test func anInProcessKillIsRecoveredToo() async throws {
        let kafka = try EmbeddedKafka()
        let report = try await FraudScenario(input: Self.input).run(on: kafka, kill: .inProcess) { _ in }
        #expect(report.verified, "\(report.summary)")
    }

    @Test func rkafkaDemoStatefulRunsTheScenarioAndSucceeds() async throws {
        let command = try DemoCommand.parse(["--stateful", "--payments", "2000"])
        #expect(command.stateful && command.payments == 2_000)
        // What `rkafka demo --stateful` runs, with this bundle's rkafka for the child process.
        try await StatefulDemo.run(payments: command.payments, executable: try RKafkaExecutable.url())
    }

    @Test func theStatefulDemoRefusesAnExternalCluster() {
        #expect(throws: (any Error).self) {
            _ = try DemoCommand.parse(["--stateful", "--bootstrap-servers", "localhost:9092"])
        }
    }

    @Test func aCheckpointNeverCountsBelowWhatIsCommitted() {
        let committed = FraudCheckpoint(alerts: 48, windows: 352, transactions: 4)
        // After a restart the windows are writing again while the alerts still skip the committed ones.
        #expect(
            committed.next(counted: FraudCheckpoint(alerts: 47, windows: 400))
                == FraudCheckpoint(alerts: 48, windows: 400, transactions: 5))
        #expect(
            committed.next(counted: FraudCheckpoint(alerts: 60, windows: 352))
                == FraudCheckpoint(alerts: 60, windows: 352, transactions: 5))
    }

    @Test func aComparisonCountsMissingDoubledAndUnexpectedOutputs() {
        let comparison = FraudScenario.Comparison(expected: [1, 2, 2, 3], read: [2, 2, 2, 3, 9])
        #expect(comparison.missing == 1 && comparison.duplicated == 1 && comparison.unexpected == 1)
        #expect(!comparison.isEqual)
        #expect(FraudScenario.Comparison(expected: [1, 2, 2], read: [2, 1, 2]).isEqual)
    }
}
