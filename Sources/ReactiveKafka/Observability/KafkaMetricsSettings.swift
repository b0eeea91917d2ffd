import CoreMetrics

/// What the connector reports through swift-metrics (on by default).
///
/// Metrics go to the `MetricsSystem` the application bootstrapped (nothing is
/// recorded until one is; swift-metrics' default is a no-op) or to ``factory``.
/// Names and attributes follow OpenTelemetry's messaging semantic conventions
/// (see ``MessagingMetric``). Counters are updated once per batch, never per
/// record, so recording stays off the per-record path.
public struct KafkaMetricsSettings: Sendable {
    /// Whether the client records metrics at all.
    public var enabled: Bool = true
    /// Whether lag, offset and record counts carry a `messaging.destination.partition.id`
    /// attribute. Turn it off for topics with many partitions: series are then per topic.
    public var perPartitionLabels: Bool = true
    /// Extra attributes on every metric of this client (for example a service or instance name).
    public var dimensions: [(String, String)] = []
    /// Where metrics go; `nil` is the bootstrapped `MetricsSystem.factory`.
    public var factory: (any MetricsFactory)? = nil

    /// The defaults: on, per-partition attributes, the bootstrapped metrics system.
    public init() {}

    /// Recording nothing.
    public static var disabled: KafkaMetricsSettings {
        var settings = KafkaMetricsSettings()
        settings.enabled = false
        return settings
    }
}

extension KafkaMetricsSettings: Equatable {
    /// Equal when every field is, factories by identity (the same instance, or both the bootstrapped one).
    public static func == (lhs: Self, rhs: Self) -> Bool {
        guard lhs.enabled == rhs.enabled, lhs.perPartitionLabels == rhs.perPartitionLabels,
            lhs.dimensions.elementsEqual(rhs.dimensions, by: { $0 == $1 })
        else { return false }
        switch (lhs.factory, rhs.factory) {
        case (nil, nil): return true
        case (let l?, let r?): return (l as AnyObject) === (r as AnyObject)
        default: return false
        }
    }
}
