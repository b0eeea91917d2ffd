import CoreMetrics

/// An ``EventSourced`` flow's swift-metrics instruments (``MessagingMetric``): one update per
/// recovery (the partitions a rebalance assigned, recovered together), never per event.
final class RecoveryInstruments: Sendable {
    private let duration: CoreMetrics.Timer
    private let events: Counter

    /// Instruments for the flow over `changelogTopic`, or nil when `settings` turn metrics off.
    init?(_ settings: KafkaMetricsSettings, changelogTopic: String) {
        guard settings.enabled else { return nil }
        let factory = settings.factory ?? MetricsSystem.factory
        let base =
            [(MessagingMetric.system, "kafka"), (MessagingMetric.destination, changelogTopic)] + settings.dimensions
        duration = CoreMetrics.Timer(
            label: MessagingMetric.operationDuration,
            dimensions: base + [(MessagingMetric.operationName, "recover_state")], factory: factory)
        events = Counter(label: MessagingMetric.recoveredEvents, dimensions: base, factory: factory)
    }

    /// A recovery replayed `eventCount` events in `elapsed`.
    func recovered(events eventCount: Int, after elapsed: Duration) {
        duration.recordNanoseconds(elapsed.nanoseconds)
        events.increment(by: eventCount)
    }
}
