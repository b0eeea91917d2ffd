import CoreMetrics

/// A transactional producer's swift-metrics instruments (``MessagingMetric``): one update per
/// transaction committed or aborted.
final class TransactionInstruments: Sendable {
    private let committedCounter: Counter
    private let abortedCounter: Counter
    private let commitDuration: CoreMetrics.Timer
    private let records: Recorder

    /// Instruments for the producer with `transactionalId`, or nil when `settings` turn metrics off.
    init?(_ settings: KafkaMetricsSettings, transactionalId: String, clientId: String?) {
        guard settings.enabled else { return nil }
        let factory = settings.factory ?? MetricsSystem.factory
        var base = [(MessagingMetric.system, "kafka"), ("messaging.kafka.transactional.id", transactionalId)]
        if let clientId { base.append((MessagingMetric.clientId, clientId)) }
        base += settings.dimensions
        let outcome = "messaging.kafka.transaction.outcome"
        committedCounter = Counter(
            label: MessagingMetric.transactions, dimensions: base + [(outcome, "committed")], factory: factory)
        abortedCounter = Counter(
            label: MessagingMetric.transactions, dimensions: base + [(outcome, "aborted")], factory: factory)
        commitDuration = CoreMetrics.Timer(
            label: MessagingMetric.operationDuration,
            dimensions: base + [(MessagingMetric.operationName, "commit_transaction")], factory: factory)
        records = Recorder(label: MessagingMetric.transactionRecords, dimensions: base, factory: factory)
    }

    /// A transaction committed after `duration` (its commit call), holding `recordCount` records.
    func committed(after duration: Duration, recordCount: Int) {
        committedCounter.increment()
        commitDuration.recordNanoseconds(duration.nanoseconds)
        records.record(recordCount)
    }

    /// A transaction aborted.
    func aborted() {
        abortedCounter.increment()
    }
}
