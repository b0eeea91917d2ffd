import Testing

@testable import rkafka

@Suite struct BenchCommandTests {
    @Test func scenariosAreRepeatableOrCommaSeparatedWithoutDuplicates() throws {
        let command = try BenchCommand.parse([
            "--scenario", "plain-consume, produce-flexiflow", "--scenario", "plain-consume", "--scenario",
            "at-least-once-pipeline",
        ])
        #expect(command.scenarios == ["plain-consume", "produce-flexiflow", "at-least-once-pipeline"])
    }

    @Test func defaultsAreTheIssuesAndAllScenariosRun() throws {
        let command = try BenchCommand.parse([])
        #expect(command.messages == 1_000_000)
        #expect(command.size == 100)
        #expect(command.partitions == nil)
        #expect(command.topicPartitions == 64)
        #expect(command.scenarios == BenchScenarios.allNames)
        #expect(
            Set(BenchScenarios.kafka.map(\.name))
                == [
                    "plain-consume", "committable-consume-commit", "produce-flexiflow", "produce-plainsink",
                    "at-least-once-pipeline", "transactional-pipeline", "table-join", "table-lookup",
                    "event-sourced-recovery",
                ])
    }

    @Test func theMetricsBackendIsNoneUnlessPrometheusIsAsked() throws {
        #expect(try BenchCommand.parse([]).metrics == .none)
        #expect(try BenchCommand.parse(["--metrics", "prometheus"]).metrics == .prometheus)
        #expect(throws: (any Error).self) { try BenchCommand.parse(["--metrics", "statsd"]) }
    }

    @Test func theMetricsSummaryCountsSamplesAndRecordCountSeries() {
        let page = """
            # TYPE messaging_client_consumed_messages counter
            messaging_client_consumed_messages{messaging_destination_partition_id="0"} 10
            messaging_client_consumed_messages{messaging_destination_partition_id="1"} 12
            # TYPE messaging_client_sent_messages counter
            messaging_client_sent_messages{messaging_destination_name="out"} 22
            messaging_kafka_consumer_lag{messaging_destination_partition_id="0"} 0
            """
        #expect(
            BenchMetricsBackend.summary(ofPage: page)
                == "prometheus registry: 4 samples (2 consumed-messages series, 1 sent-messages series)")
    }

    @Test func unknownScenarioAndOverfullPartitionsAreRejected() {
        #expect(throws: (any Error).self) { try BenchCommand.parse(["--scenario", "nope"]) }
        // 1M × 100 B on 4 partitions is 25 MB a partition: more than the embedded cluster keeps.
        #expect(throws: (any Error).self) { try BenchCommand.parse(["--partitions", "4"]) }
    }

    @Test func jsonLineKeepsTheAgreedFieldNames() throws {
        let line = BenchLine(
            scenario: "s", messages: 10, msgs_per_sec: 5, baseline_msgs_per_sec: 10, ratio: 0.5, peak_rss_mb: 1,
            allocs_per_msg: 2, baseline_allocs_per_msg: 1, baseline: "b", notes: nil, baseline_peak_rss_mb: 3
        ).jsonLine()
        for field in [
            "\"scenario\"", "\"messages\"", "\"msgs_per_sec\"", "\"baseline_msgs_per_sec\"", "\"ratio\"",
            "\"peak_rss_mb\"", "\"baseline_peak_rss_mb\"",
        ] {
            #expect(line.contains(field))
        }
    }

    @Test func repeatedRunsReportTheMedianRunWithEveryRatio() throws {
        #expect(try BenchCommand.parse([]).repeat == 1)
        #expect(throws: (any Error).self) { try BenchCommand.parse(["--repeat", "0"]) }
        func run(_ ratio: Double, cpu: Double) -> BenchLine {
            BenchLine(
                scenario: "s", messages: 10, msgs_per_sec: ratio * 10, baseline_msgs_per_sec: 10, ratio: ratio,
                peak_rss_mb: 1,
                allocs_per_msg: nil, baseline_allocs_per_msg: nil, baseline: "b", notes: nil, cpu_us_per_msg: cpu)
        }
        let median = try #require(BenchLine.median(of: [run(0.9, cpu: 1), run(0.5, cpu: 2), run(0.7, cpu: 3)]))
        #expect(median.ratio == 0.7)
        #expect(median.cpu_us_per_msg == 3)
        #expect(median.ratio_runs == [0.9, 0.5, 0.7])
        #expect(median.jsonLine().contains("\"ratio_runs\""))
        #expect(BenchLine.median(of: [run(0.6, cpu: 1)])?.ratio_runs == nil)
        #expect(BenchLine.median(of: []) == nil)
    }
}
