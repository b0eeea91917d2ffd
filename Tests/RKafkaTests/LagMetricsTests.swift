import ReactiveKafka
import Testing

@testable import rkafka

/// The Prometheus page `rkafka lag` serves, rendered from made-up snapshots.
@Suite struct LagMetricsTests {
    let now = ContinuousClock.now
    let p0 = TopicPartition("orders", 0), p1 = TopicPartition("orders", 1)

    func page(_ snapshot: LagSnapshot?, duration: Duration? = .milliseconds(250)) -> String {
        String(
            decoding: LagMetrics.render(snapshot: snapshot, roundDuration: duration, clusterName: "prod"), as: UTF8.self
        )
    }

    func snapshot(_ groups: [ConsumerGroupLag]) -> LagSnapshot {
        LagSnapshot(
            time: now, groups: groups,
            partitions: [
                PartitionOffsets(topicPartition: p0, earliest: 3, latest: 100),
                PartitionOffsets(topicPartition: p1, earliest: nil, latest: 50),
            ])
    }

    var billing: ConsumerGroupLag {
        ConsumerGroupLag(
            name: "billing", isSimpleConsumer: false,
            partitions: [
                GroupPartitionLag(
                    topicPartition: p0, committedOffset: 60, endOffset: 100, timeLag: .interpolated(seconds: 12.5),
                    member: GroupMember(consumerId: "rkafka-1-abc", clientId: "rkafka", host: "/10.0.0.7")),
                GroupPartitionLag(
                    topicPartition: p1, committedOffset: 50, endOffset: 50, timeLag: .caughtUp, member: nil),
            ])
    }

    @Test func seriesCarryKafkaLagExportersNamesAndLabels() {
        let text = page(snapshot([billing]))
        let lines = Set(text.split(separator: "\n").map(String.init))
        let member =
            #"cluster_name="prod",group="billing",topic="orders",partition="0",member_host="/10.0.0.7",consumer_id="rkafka-1-abc",client_id="rkafka""#
        let noMember =
            #"cluster_name="prod",group="billing",topic="orders",partition="1",member_host="",consumer_id="",client_id="""#
        let expected = [
            "kafka_consumergroup_group_offset{\(member)} 60.0",
            "kafka_consumergroup_group_lag{\(member)} 40.0",
            "kafka_consumergroup_group_lag_seconds{\(member)} 12.5",
            "kafka_consumergroup_group_lag{\(noMember)} 0.0",
            "kafka_consumergroup_group_lag_seconds{\(noMember)} 0.0",
            #"kafka_consumergroup_group_max_lag{cluster_name="prod",group="billing",is_simple_consumer="false"} 40.0"#,
            #"kafka_consumergroup_group_max_lag_seconds{cluster_name="prod",group="billing",is_simple_consumer="false"} 12.5"#,
            #"kafka_consumergroup_group_sum_lag{cluster_name="prod",group="billing"} 40.0"#,
            #"kafka_consumergroup_group_topic_sum_lag{cluster_name="prod",group="billing",topic="orders"} 40.0"#,
            #"kafka_partition_latest_offset{cluster_name="prod",topic="orders",partition="0"} 100.0"#,
            #"kafka_partition_earliest_offset{cluster_name="prod",topic="orders",partition="0"} 3.0"#,
            #"kafka_lag_exporter_up{cluster_name="prod"} 1.0"#,
            #"kafka_lag_exporter_scrape_duration_seconds{cluster_name="prod"} 0.25"#,
            "# TYPE kafka_consumergroup_group_lag gauge",
        ]
        for line in expected { #expect(lines.contains(line), "missing: \(line)\n\(text)") }
        #expect(
            !text.contains(#"kafka_partition_earliest_offset{cluster_name="prod",topic="orders",partition="1"}"#),
            "an unknown start offset has no series")
    }

    @Test func anUnknownLagInSecondsIsNaN() {
        let group = ConsumerGroupLag(
            name: "new", isSimpleConsumer: nil,
            partitions: [
                GroupPartitionLag(
                    topicPartition: p0, committedOffset: 1, endOffset: 100, timeLag: .unknown, member: nil)
            ])
        let page = PrometheusPage(text: page(snapshot([group])))
        #expect(page.value("kafka_consumergroup_group_lag_seconds", ["group": "new"])?.isNaN == true)
        #expect(
            page.value("kafka_consumergroup_group_max_lag_seconds", ["group": "new", "is_simple_consumer": ""])?.isNaN
                == true)
        #expect(page.value("kafka_consumergroup_group_lag", ["group": "new"]) == 99)
    }

    @Test func aGroupMissingFromTheNextSnapshotHasNoSeries() {
        let other = ConsumerGroupLag(
            name: "audit", isSimpleConsumer: true,
            partitions: [
                GroupPartitionLag(
                    topicPartition: p1, committedOffset: 10, endOffset: 50, timeLag: .extrapolated(seconds: 90),
                    member: nil)
            ])
        let both = page(snapshot([billing, other]))
        #expect(PrometheusPage(text: both).contains("kafka_consumergroup_group_lag", label: "group", "audit"))
        let after = page(snapshot([billing]))
        #expect(!after.contains(#"group="audit""#))
        #expect(PrometheusPage(text: after).contains("kafka_consumergroup_group_lag", label: "group", "billing"))
    }

    @Test func aFailedRoundIsUpZeroWithNoLagSeries() {
        let text = page(nil, duration: .seconds(5))
        let page = PrometheusPage(text: text)
        #expect(page.value("kafka_lag_exporter_up", ["cluster_name": "prod"]) == 0)
        #expect(page.value("kafka_lag_exporter_scrape_duration_seconds") == 5)
        #expect(!text.contains("kafka_consumergroup_"))
        #expect(!text.contains("kafka_partition_"))
    }

    @Test func labelValuesAreEscaped() {
        let odd = ConsumerGroupLag(
            name: #"a"b\c"#, isSimpleConsumer: nil,
            partitions: [
                GroupPartitionLag(
                    topicPartition: p0, committedOffset: 100, endOffset: 100, timeLag: .caughtUp, member: nil)
            ])
        #expect(page(snapshot([odd])).contains(#"group="a\"b\\c""#))
    }
}
