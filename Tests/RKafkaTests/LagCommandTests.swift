import Foundation
import ReactiveKafka
import ReactiveKafkaTestKit
import Synchronization
import Testing

@testable import rkafka

/// `rkafka lag`'s options, and the command itself as a child process: it serves, and SIGTERM stops it.
@Suite(.serialized) struct LagCommandTests {
    @Test func optionsBecomeTheCollectorsConfiguration() throws {
        let command = try LagCommand.parse([
            "--group", "billing", "--group", "orders-.*", "--topic", "orders", "--interval", "500ms",
            "--listen", "0.0.0.0:9400", "--window", "30", "--cluster-name", "prod",
        ])
        let configuration = try command.collectorConfiguration()
        #expect(configuration.groups.patterns == ["billing", "orders-.*"])
        #expect(configuration.topics.patterns == ["orders"])
        #expect(configuration.interval == .milliseconds(500))
        #expect(configuration.timeout == .milliseconds(500), "the timeout defaults to the interval")
        #expect(configuration.windowSize == 30)
        #expect(command.listen.host == "0.0.0.0" && command.listen.port == 9400)
        let defaults = try LagCommand.parse([]).collectorConfiguration()
        #expect(defaults.interval == .seconds(5) && defaults.timeout == .seconds(5) && defaults.windowSize == 60)
        #expect(
            try LagCommand.parse(["--interval", "1m"]).collectorConfiguration().timeout == .seconds(10), "at most 10 s")
        #expect(try LagCommand.parse(["--listen", "[::1]:0"]).listen.host == "::1")
    }

    @Test(arguments: [
        (["--interval", "5"], "interval"),
        (["--interval", "0s"], "--interval must be at least 10ms"),
        (["--group", "orders-(["], "not a valid regular expression"),
        (["--window", "1"], "--window must be at least 2"),
        (["--listen", "localhost"], "listen"),
        (["--listen", "127.0.0.1:70000"], "listen"),
        (["--property", "bootstrap.servers=x:1"], "use --bootstrap-servers"),
        (["--property", "=x"], "KEY=VALUE"),
    ])
    func badOptionsAreRefusedWithTheReason(arguments: [String], reason: String) {
        #expect {
            _ = try LagCommand.parse(arguments)
        } throws: { error in
            let message = LagCommand.message(for: error)
            return message.contains(reason)
                || {
                    Issue.record("\(arguments): \(message)")
                    return false
                }()
        }
    }

    @Test func theCommandServesLagAndStopsOnSIGTERM() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("lag-cli", partitions: 1)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "lag-cli", records: (0..<12).map { (nil, "c\($0)") },
            partition: 0)
        try await TestData.commit(
            bootstrapServers: kafka.bootstrapServers, group: "g-cli", topic: "lag-cli", offsets: [0: 5])

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rkafka-lag-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let children = ChildProcesses()
        defer { children.killAll() }
        let lines = LineLog()
        let child = children.add(
            try ChildProcess(
                try RKafkaExecutable.url(),
                [
                    "lag", "--bootstrap-servers", kafka.bootstrapServers, "--group", "g-cli", "--listen", "127.0.0.1:0",
                    "--interval", "200ms", "--cluster-name", "cli",
                ],
                name: "lag", directory: directory, onLines: { lines.add($0) }))

        let serving = try #require(
            await lines.first(within: .seconds(20)) { $0.hasPrefix("rkafka lag: serving http://") },
            "stderr: \(child.stderrTail())")
        let address = serving.dropFirst("rkafka lag: serving http://".count).prefix { $0 != "/" }
        let port = try #require(Int(address.split(separator: ":").last ?? ""))
        _ = try #require(
            await lines.first(within: .seconds(20)) { $0.hasPrefix("rkafka lag: up: 1 group(s)") },
            "stderr: \(child.stderrTail())")

        let page = PrometheusPage(text: try await HTTPTestClient.get(port: port, "/metrics").body)
        #expect(
            page.value(
                "kafka_consumergroup_group_lag",
                ["cluster_name": "cli", "group": "g-cli", "topic": "lag-cli", "partition": "0"]) == 7)
        #expect(page.value("kafka_lag_exporter_up", ["cluster_name": "cli"]) == 1)
        #expect(try await HTTPTestClient.get(port: port, "/health").status == 200)

        child.send(SIGTERM)
        let exit = await child.waitForExit(timeout: .seconds(10))
        #expect(
            exit?.status == 0 && exit?.exited == true, "exit \(String(describing: exit)); stderr: \(child.stderrTail())"
        )
        #expect(lines.all.contains("rkafka lag: SIGTERM: stopped"))
        #expect(!HTTPTestClient.accepts(port: port), "the server is closed")
    }
}

/// Lines a child printed, and bounded waits for one.
final class LineLog: Sendable {
    private struct State {
        var lines: [String] = []
        var waiters: [Int: (predicate: @Sendable (String) -> Bool, continuation: CheckedContinuation<String?, Never>)] =
            [:]
        var next = 0
    }
    private let state = Mutex(State())

    var all: [String] { state.withLock { $0.lines } }

    func add(_ batch: [Substring]) {
        let ready = state.withLock { s -> [(CheckedContinuation<String?, Never>, String)] in
            var ready: [(CheckedContinuation<String?, Never>, String)] = []
            for line in batch.map(String.init) {
                s.lines.append(line)
                for (id, waiter) in s.waiters where waiter.predicate(line) {
                    ready.append((waiter.continuation, line))
                    s.waiters[id] = nil
                }
            }
            return ready
        }
        for (continuation, line) in ready { continuation.resume(returning: line) }
    }

    /// The first line (printed so far or later) for which `predicate` holds, within `limit`.
    func first(within limit: Duration, where predicate: @escaping @Sendable (String) -> Bool) async -> String? {
        let id = state.withLock { s in
            defer { s.next += 1 }
            return s.next
        }
        return await BoundedWait.within(limit) {
            await withCheckedContinuation { continuation in
                let found = self.state.withLock { s -> String? in
                    if let line = s.lines.first(where: predicate) { return line }
                    s.waiters[id] = (predicate, continuation)
                    return nil
                }
                if let found { continuation.resume(returning: found) }
            }
        } ?? nil
    }
}
