import Synchronization

/// How a Kafka source tells the stage pulling it, in the same task, that it is about to
/// suspend for lack of records: the moment a producer flow's collected records stop being
/// worth holding for more.
///
/// A ``Producer/flexiFlow(_:)`` pump parks its collected records before each pull; the
/// producer's poll thread produces a parked batch at its next look (at least every
/// millisecond). Without this, a record that arrives alone waits for that look: half a
/// millisecond on average, a millisecond at worst, on every record of a stream slower than
/// the pipeline (`rkafka bench --scenario latency`). The listener is a task-local set for the
/// pump's task, so only a source running inside a pump's pull sees one; the source looks it up
/// only on its waiting path, never per record.
@usableFromInline
enum UpstreamWait {
    /// The stage to tell; nil outside a producer flow's pump.
    @TaskLocal static var listener: ParkedBatchWake?

    /// Runs `operation` (a pump) with `wake` as the listener of the sources it pulls.
    @usableFromInline
    static func run(telling wake: ParkedBatchWake, _ operation: () async -> Void) async {
        await $listener.withValue(wake, operation: operation)
    }
}

/// A producer flow pump's listener: when its upstream is about to wait while the pump's batch is
/// parked with records, wakes the producer's poll thread to produce them now.
@usableFromInline
final class ParkedBatchWake: Sendable {
    private let engine: ProducerEngine
    /// Set once by the pump before its first pull; read by sources waiting inside its pulls
    /// (the pump's task, or tasks its upstream starts).
    private let batch = Mutex<ProducerFlowBatch?>(nil)

    @usableFromInline
    init(_ engine: ProducerEngine) { self.engine = engine }

    @usableFromInline
    func watch(_ batch: ProducerFlowBatch) { self.batch.withLock { $0 = batch } }

    /// The upstream is about to suspend: a parked batch with records is produced now.
    func upstreamWillWait() {
        guard let batch = batch.withLock({ $0 }), batch.isParkedWithRecords else { return }
        engine.parkedPumpWaits()
    }
}
