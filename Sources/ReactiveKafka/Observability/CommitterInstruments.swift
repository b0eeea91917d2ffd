import CoreMetrics

/// A committer's swift-metrics instruments (``MessagingMetric``): one update per commit batch.
final class CommitterInstruments: Sendable {
    private let batchSize: Recorder
    private let offsets: Counter
    private let commitDuration: CoreMetrics.Timer

    /// Instruments for one committer run, or nil when `settings` turn metrics off.
    init?(_ settings: KafkaMetricsSettings) {
        guard settings.enabled else { return nil }
        let factory = settings.factory ?? MetricsSystem.factory
        let base = [(MessagingMetric.system, "kafka")] + settings.dimensions
        batchSize = Recorder(label: MessagingMetric.committerBatchSize, dimensions: base, factory: factory)
        offsets = Counter(label: MessagingMetric.committerOffsets, dimensions: base, factory: factory)
        commitDuration = CoreMetrics.Timer(
            label: MessagingMetric.operationDuration,
            dimensions: base + [(MessagingMetric.operationName, "committer_commit")], factory: factory)
    }

    /// A batch of `offsetCount` offsets observed committed as `partitionCount` partition offsets, after `duration`
    /// (nil when the committer does not wait for acknowledgements).
    func committed(offsetCount: Int, partitionCount: Int, after duration: Duration?) {
        batchSize.record(offsetCount)
        offsets.increment(by: partitionCount)
        if let duration { commitDuration.recordNanoseconds(duration.nanoseconds) }
    }
}
