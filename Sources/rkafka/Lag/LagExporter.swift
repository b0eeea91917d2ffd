import ReactiveKafka
import Synchronization

/// `rkafka lag`'s endpoints over a running ``LagCollector``: `/metrics` (the Prometheus page
/// of the last round, rendered once per round) and `/health` (200 while rounds succeed,
/// 503 with the reason otherwise). Answers come from memory: a scrape never waits on Kafka.
final class LagExporter: Sendable {
    let collector: LagCollector
    let clusterName: String
    /// How old the last successful round may be for `/health` to pass.
    let maxAge: Duration
    /// The page of the round it was rendered for.
    private let page = Mutex<(rounds: Int, bytes: [UInt8])?>(nil)

    /// Endpoints over `collector`, labelling series `cluster_name="clusterName"`. `/health`
    /// fails once no round has succeeded for three intervals and a timeout.
    init(collector: LagCollector, clusterName: String) {
        self.collector = collector
        self.clusterName = clusterName
        self.maxAge = collector.configuration.interval * 3 + collector.configuration.timeout
    }

    /// The answer for `path`.
    func respond(_ path: String) -> MetricsHTTPServer.Response {
        switch path {
        case "/metrics":
            return .init(status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metricsPage())
        case "/health":
            if let problem = collector.status.problem(at: .now, maxAge: maxAge) {
                return .init(
                    status: .serviceUnavailable, contentType: "text/plain; charset=utf-8",
                    body: Array("unhealthy: \(problem)\n".utf8))
            }
            return .init(status: .ok, contentType: "text/plain; charset=utf-8", body: Array("ok\n".utf8))
        default:
            return .init(
                status: .notFound, contentType: "text/plain; charset=utf-8",
                body: Array("not found: try /metrics or /health\n".utf8))
        }
    }

    /// The Prometheus page of the last round, rendered once per round.
    func metricsPage() -> [UInt8] {
        let status = collector.status
        if let cached = page.withLock({ $0 }), cached.rounds == status.rounds { return cached.bytes }
        let bytes = LagMetrics.render(status, clusterName: clusterName)
        page.withLock { $0 = (status.rounds, bytes) }
        return bytes
    }
}
