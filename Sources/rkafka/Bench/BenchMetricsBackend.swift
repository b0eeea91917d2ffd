import ArgumentParser
import CoreMetrics
import Prometheus

/// Where the connector's metrics go during `rkafka bench` (``BenchCommand/metrics``).
///
/// The connector records metrics by default; without a bootstrapped backend swift-metrics
/// drops them (its no-op factory), which is what an application that bootstraps nothing
/// gets. `prometheus` bootstraps swift-prometheus, so every counter, gauge and timer the
/// connector updates is a real one: the cost a service with metrics pays.
enum BenchMetricsBackend: String, ExpressibleByArgument, CaseIterable, Sendable {
    case none
    case prometheus

    /// Bootstraps the backend for the whole process (swift-metrics allows one bootstrap);
    /// returns the registry to read back, if any.
    func bootstrap() -> PrometheusCollectorRegistry? {
        switch self {
        case .none:
            return nil
        case .prometheus:
            let registry = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
            return registry
        }
    }

    /// What a registry's Prometheus page (`emitToString()`) holds after the run: its samples and
    /// the connector's record-count series, to show that the run recorded into it.
    static func summary(ofPage page: String) -> String {
        let lines = page.split(separator: "\n").filter { !$0.hasPrefix("#") }
        let consumed = lines.filter { $0.hasPrefix("messaging_client_consumed_messages") }.count
        let sent = lines.filter { $0.hasPrefix("messaging_client_sent_messages") }.count
        return
            "prometheus registry: \(lines.count) samples (\(consumed) consumed-messages series, \(sent) sent-messages series)"
    }
}
