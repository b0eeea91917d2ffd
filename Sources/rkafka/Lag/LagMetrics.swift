import Prometheus
import ReactiveKafka

/// A lag collector's status in the Prometheus text format, under Kafka Lag Exporter's
/// metric names and labels, plus the exporter's own `kafka_lag_exporter_up` and
/// `kafka_lag_exporter_scrape_duration_seconds`.
///
/// Each status gets a fresh registry, so the series of a group or partition that is no
/// longer in the snapshot are gone from the next page.
enum LagMetrics {
    /// The page for a collector's status, every series labelled `cluster_name="clusterName"`.
    static func render(_ status: LagCollector.Status, clusterName: String) -> [UInt8] {
        render(snapshot: status.snapshot, roundDuration: status.duration, clusterName: clusterName)
    }

    /// The page for the last round's `snapshot` (nil: the round failed, `up` is 0) taken in `roundDuration`.
    static func render(snapshot: LagSnapshot?, roundDuration: Duration?, clusterName: String) -> [UInt8] {
        let registry = PrometheusCollectorRegistry()
        func gauge(_ name: String, _ labels: [(String, String)], _ help: String) -> Gauge {
            registry.makeGauge(
                descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
        }
        let cluster = ("cluster_name", clusterName)
        gauge("kafka_lag_exporter_up", [cluster], "1 when the last collection round read the cluster, else 0")
            .set(to: snapshot == nil ? 0 : 1)
        if let duration = roundDuration {
            gauge("kafka_lag_exporter_scrape_duration_seconds", [cluster], "How long the last collection round took")
                .set(to: duration.inSeconds)
        }
        guard let snapshot else { return registry.emitToBuffer() }
        for p in snapshot.partitions {
            let labels = [
                cluster, ("topic", p.topicPartition.topic), ("partition", String(p.topicPartition.partition)),
            ]
            gauge("kafka_partition_latest_offset", labels, "Latest offset of a partition").set(p.latest)
            if let earliest = p.earliest {
                gauge("kafka_partition_earliest_offset", labels, "Earliest offset of a partition").set(earliest)
            }
        }
        for group in snapshot.groups {
            let groupLabels = [cluster, ("group", group.name)]
            let simple = ("is_simple_consumer", group.isSimpleConsumer.map { String($0) } ?? "")
            gauge("kafka_consumergroup_group_max_lag", groupLabels + [simple], "Max group offset lag").set(group.maxLag)
            gauge("kafka_consumergroup_group_max_lag_seconds", groupLabels + [simple], "Max group time lag")
                .set(to: group.maxLagSeconds ?? .nan)
            gauge("kafka_consumergroup_group_sum_lag", groupLabels, "Sum of group offset lag").set(group.sumLag)
            for (topic, lag) in group.topicSumLag {
                gauge(
                    "kafka_consumergroup_group_topic_sum_lag", groupLabels + [("topic", topic)],
                    "Sum of group offset lag across topic partitions"
                )
                .set(lag)
            }
            for p in group.partitions {
                let labels =
                    groupLabels + [
                        ("topic", p.topicPartition.topic), ("partition", String(p.topicPartition.partition)),
                        ("member_host", p.member?.host ?? ""), ("consumer_id", p.member?.consumerId ?? ""),
                        ("client_id", p.member?.clientId ?? ""),
                    ]
                gauge("kafka_consumergroup_group_offset", labels, "Last group consumed offset of a partition").set(
                    p.committedOffset)
                gauge("kafka_consumergroup_group_lag", labels, "Group offset lag of a partition").set(p.lag)
                gauge("kafka_consumergroup_group_lag_seconds", labels, "Group time lag of a partition").set(
                    to: p.lagSeconds ?? .nan)
            }
        }
        return registry.emitToBuffer()
    }
}
