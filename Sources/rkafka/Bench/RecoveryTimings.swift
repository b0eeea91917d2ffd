import CoreMetrics
import ReactiveKafka
import Synchronization

/// A metrics factory that keeps the durations an ``EventSourced`` flow reports for its
/// recoveries (``MessagingMetric/operationDuration`` with operation `recover_state`) and drops
/// every other metric: how `event-sourced-recovery` times recovery itself, apart from the
/// group join and the transactions around it.
final class RecoveryTimings: MetricsFactory, Sendable {
    private final class Handler: TimerHandler, Sendable {
        let durations: Mutex<[Int64]>
        init() { durations = Mutex([]) }
        func recordNanoseconds(_ duration: Int64) { durations.withLock { $0.append(duration) } }
    }

    private let handler = Handler()

    /// Every recovery's duration so far, in the order they ended.
    var durations: [Duration] { handler.durations.withLock { $0.map { .nanoseconds($0) } } }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        let isRecovery =
            label == MessagingMetric.operationDuration
            && dimensions.contains { $0 == (MessagingMetric.operationName, "recover_state") }
        return isRecovery ? handler : NOOPMetricsHandler.instance
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        NOOPMetricsHandler.instance
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        NOOPMetricsHandler.instance
    }

    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}
}
