import Foundation
import ReactiveKafka
import ReactiveKafkaTestKit
import Synchronization
import Testing

@testable import rkafka

/// `rkafka lag`'s exporter in process, scraped over HTTP by a real client, against the embedded
/// cluster: a group consumes with `rkafka consume`'s stream, stops, falls behind, catches up.
@Suite(.serialized) struct LagExporterTests {
    /// The exporter's collector, HTTP server and collecting task, started; `stop()` ends them.
    struct Running {
        let collector: LagCollector
        let server: MetricsHTTPServer
        let collecting: Task<Void, any Error>
        var port: Int { server.address.port }

        init(
            _ servers: String, groups: [String], interval: Duration = .milliseconds(200),
            timeout: Duration = .seconds(2)
        ) async throws {
            let settings = ConsumerSettings().withBootstrapServers(servers).withProperty("log_level", "0")
            collector = try LagCollector(
                settings, configuration: .init(groups: try NameFilter(groups), interval: interval, timeout: timeout))
            let exporter = LagExporter(collector: collector, clusterName: "test")
            server = try await MetricsHTTPServer.start(
                ListenAddress(host: "127.0.0.1", port: 0), responder: exporter.respond)
            let collector = self.collector
            collecting = Task { try await collector.run() }
        }

        func scrape() async throws -> PrometheusPage {
            let response = try await HTTPTestClient.get(port: port, "/metrics")
            #expect(response.status == 200)
            #expect(response.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
            return PrometheusPage(text: response.body)
        }

        /// Waits (bounded) for a round whose status satisfies `predicate`.
        func waitFor(_ what: String, _ predicate: @escaping @Sendable (LagCollector.Status) -> Bool) async throws
            -> LagCollector.Status
        {
            guard let status = await collector.firstStatus(within: .seconds(20), where: predicate) else {
                throw HTTPTestClient.Failure(
                    description: "no collection round showed \(what) within 20 s; last: \(collector.status)")
            }
            return status
        }

        func stop() async {
            collecting.cancel()
            _ = await collecting.result
            await server.stop()
        }
    }

    /// Runs `body` with an exporter started on a free port; stops it however `body` ends.
    static func withExporter<T>(
        _ servers: String, groups: [String], interval: Duration = .milliseconds(200), timeout: Duration = .seconds(2),
        _ body: (Running) async throws -> T
    ) async throws -> T {
        let exporter = try await Running(servers, groups: groups, interval: interval, timeout: timeout)
        do {
            let result = try await body(exporter)
            await exporter.stop()
            return result
        } catch {
            await exporter.stop()
            throw error
        }
    }

    /// Consumes `count` records of `topic` in `group` with `rkafka consume`'s committable stream
    /// (it commits what it wrote, then stops and leaves the group).
    static func consume(_ kafka: EmbeddedKafka, group: String, topic: String, count: Int) async throws {
        let settings = ConsumeCommand.settings(
            bootstrapServers: kafka.bootstrapServers, group: group, fromBeginning: true
        )
        .withProperties(EmbeddedKafka.fastGroupProperties)
        let fd = open("/dev/null", O_WRONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        let run = ConsumeRun(writer: OutputWriter(descriptor: fd), format: .json, limit: count)
        let control = ConsumeCommand.graph(settings, topic: topic, committable: true, run: run).start()
        try await control.streamCompletion.value
        await control.shutdown()
        #expect(run.written == count)
    }

    @Test func aBacklogBehindTheGroupsCommitIsItsLagUntilItCatchesUp() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("lag-e2e", partitions: 2)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "lag-e2e", records: (0..<10).map { (nil, "a\($0)") },
            roundRobinOver: 2)
        try await Self.consume(kafka, group: "g-e2e", topic: "lag-e2e", count: 10)

        try await Self.withExporter(kafka.bootstrapServers, groups: ["g-e2e"]) { exporter in
            let caughtUp = try await exporter.waitFor("the group caught up") {
                $0.snapshot?.group("g-e2e")?.partitions.count == 2
            }
            var page = try await exporter.scrape()
            #expect(page.value("kafka_lag_exporter_up", ["cluster_name": "test"]) == 1)
            #expect(page.value("kafka_consumergroup_group_sum_lag", ["group": "g-e2e"]) == 0)
            #expect(
                page.value(
                    "kafka_consumergroup_group_offset", ["group": "g-e2e", "topic": "lag-e2e", "partition": "0"]) == 5)

            // The group is stopped; N records arrive behind its commit.
            let n = 40
            try await TestData.produce(
                bootstrapServers: kafka.bootstrapServers, topic: "lag-e2e", records: (0..<n).map { (nil, "b\($0)") },
                roundRobinOver: 2)
            let behind = try await exporter.waitFor("a lag of \(n)") {
                $0.snapshot?.group("g-e2e")?.sumLag == Int64(n) && $0.rounds > caughtUp.rounds
            }
            page = try await exporter.scrape()
            for partition in ["0", "1"] {
                let labels = ["cluster_name": "test", "group": "g-e2e", "topic": "lag-e2e", "partition": partition]
                #expect(page.value("kafka_consumergroup_group_lag", labels) == Double(n / 2))
                #expect(page.value("kafka_consumergroup_group_offset", labels) == 5)
                #expect(
                    page.value("kafka_partition_latest_offset", ["topic": "lag-e2e", "partition": partition])
                        == Double(5 + n / 2))
                #expect(
                    page.value("kafka_partition_earliest_offset", ["topic": "lag-e2e", "partition": partition]) == 0)
            }
            #expect(page.value("kafka_consumergroup_group_sum_lag", ["group": "g-e2e"]) == Double(n))
            #expect(
                page.value("kafka_consumergroup_group_topic_sum_lag", ["group": "g-e2e", "topic": "lag-e2e"])
                    == Double(n))
            #expect(page.value("kafka_consumergroup_group_max_lag", ["group": "g-e2e"]) == Double(n / 2))
            // The window saw the end at the commit before the records came: interpolated, not guessed.
            #expect(
                behind.snapshot?.group("g-e2e")?.partitions.allSatisfy {
                    if case .interpolated = $0.timeLag { true } else { false }
                } == true)

            // While the group stands still its lag in seconds grows.
            let first = try #require(
                page.value("kafka_consumergroup_group_lag_seconds", ["group": "g-e2e", "partition": "0"]))
            _ = try await exporter.waitFor("two more rounds") { $0.rounds >= behind.rounds + 2 }
            page = try await exporter.scrape()
            let later = try #require(
                page.value("kafka_consumergroup_group_lag_seconds", ["group": "g-e2e", "partition": "0"]))
            #expect(later > first, "lag in seconds grows while the group is stopped: \(first) then \(later)")
            #expect(try #require(page.value("kafka_consumergroup_group_max_lag_seconds", ["group": "g-e2e"])) >= later)

            // The group consumes the backlog and commits: no lag, in records or in seconds.
            try await Self.consume(kafka, group: "g-e2e", topic: "lag-e2e", count: n)
            _ = try await exporter.waitFor("the backlog consumed") { $0.snapshot?.group("g-e2e")?.sumLag == 0 }
            page = try await exporter.scrape()
            for partition in ["0", "1"] {
                #expect(page.value("kafka_consumergroup_group_lag", ["group": "g-e2e", "partition": partition]) == 0)
                #expect(
                    page.value("kafka_consumergroup_group_lag_seconds", ["group": "g-e2e", "partition": partition]) == 0
                )
            }
            #expect(page.value("kafka_consumergroup_group_max_lag_seconds", ["group": "g-e2e"]) == 0)
        }
    }

    @Test func anUnreachableClusterIsUpZeroAndUnhealthyWithoutAHang() async throws {
        // Nothing listens on port 1: every librdkafka call waits out the round's timeout.
        try await Self.withExporter("127.0.0.1:1", groups: ["g"], interval: .milliseconds(500), timeout: .seconds(1)) {
            exporter in
            // Scrapes are answered while the first round is still waiting on the cluster.
            let started = ContinuousClock.now
            var health = try await HTTPTestClient.get(port: exporter.port, "/health")
            var page = try await exporter.scrape()
            #expect(ContinuousClock.now - started < .seconds(2), "scrapes do not wait on Kafka")
            #expect(health.status == 503)
            #expect(page.value("kafka_lag_exporter_up", ["cluster_name": "test"]) == 0)

            let failed = try await exporter.waitFor("a failed round") { $0.rounds >= 1 }
            #expect(ContinuousClock.now - started < .seconds(6), "the first round ended with its 1 s timeout")
            #expect(failed.error?.kind == .brokerUnreachable, "\(String(describing: failed.error))")
            health = try await HTTPTestClient.get(port: exporter.port, "/health")
            #expect(health.status == 503)
            #expect(health.body.contains("the last collection round failed"), "\(health.body)")
            page = try await exporter.scrape()
            #expect(page.value("kafka_lag_exporter_up", ["cluster_name": "test"]) == 0)
            #expect(page.value("kafka_lag_exporter_scrape_duration_seconds", ["cluster_name": "test"]) != nil)
            #expect(!page.text.contains("kafka_consumergroup_"), "no group series while the cluster cannot be read")
            #expect(try await HTTPTestClient.get(port: exporter.port, "/nothing").status == 404)
        }
    }

    @Test func healthPassesWhileRoundsSucceed() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("lag-health", partitions: 1)
        let port = try await Self.withExporter(kafka.bootstrapServers, groups: ["g-health"]) { exporter in
            _ = try await exporter.waitFor("a successful round") { $0.isUp }
            let health = try await HTTPTestClient.get(port: exporter.port, "/health")
            #expect(health.status == 200)
            #expect(health.body == "ok\n")
            return exporter.port
        }
        #expect(!HTTPTestClient.accepts(port: port), "the server stopped listening")
    }
}
