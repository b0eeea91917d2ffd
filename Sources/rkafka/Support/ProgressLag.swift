import Foundation
import ReactiveKafka

/// A running consumer's lag for progress lines, in records and in seconds: its statistics'
/// end offsets (librdkafka's `hi_offset`) sampled each time it is asked, into the library's
/// ``LagTracker``, and its committed offsets looked up in them, as `rkafka lag` shows a group.
/// Without a commit it falls back on the position librdkafka handed out (`app_offset`), which
/// runs ahead of the stream by what the consumer buffers.
struct ProgressLag {
    /// The lag over the consumer's partitions.
    struct Lag: Equatable {
        /// Records behind, summed over the partitions.
        var records: Int64
        /// The largest lag in seconds; nil until two samples of a lagging partition exist.
        var seconds: Double?

        /// `lag 120 records, 3.4 s`.
        var text: String {
            "lag \(records) records, " + (seconds.map { String(format: "%.1f s", $0) } ?? "- s (estimating)")
        }
    }

    private var tracker = LagTracker()

    /// Samples `metrics` as read at `now`; nil while no partition has a position yet (joining the group).
    mutating func update(_ metrics: ConsumerMetrics, at now: ContinuousClock.Instant = .now) -> Lag? {
        var positions: [TopicPartition: Int64] = [:]
        var ends: [TopicPartition: Int64] = [:]
        for (partition, figures) in metrics.partitions where figures.highWatermark >= 0 {
            ends[partition] = figures.highWatermark
            let position = figures.committedOffset >= 0 ? figures.committedOffset : figures.position
            if position >= 0 { positions[partition] = position }
        }
        guard !positions.isEmpty else { return nil }
        let reading = LagReading(
            groups: [LagReading.Group(name: "consumer", committed: positions)], earliest: [:], latest: ends)
        guard let lag = tracker.update(reading, at: now).group("consumer") else { return Lag(records: 0, seconds: 0) }
        return Lag(records: lag.sumLag, seconds: lag.maxLagSeconds)
    }
}
