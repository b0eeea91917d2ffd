import Synchronization

/// Fetched batches the application let go of, reported to the engine that fetched them: their
/// bytes leave the consumer's byte budget (``ConsumerBufferStateMachine/countsHeldBytes``).
///
/// A batch is freed on whatever thread drops its last record, possibly after the engine is
/// gone (each batch holds this object, which holds only the wake-up signal), so the report is
/// an atomic sum the engine thread collects, and a wake-up only while the engine has paused
/// fetching for the budget, when a release may let it resume.
final class HeldBatchReleases: Sendable {
    private let pending = Atomic<Int>(0)
    /// Set by the engine thread while fetching is paused for the budget.
    let engineWaits = Atomic<Bool>(false)
    private let wakeup: WakeupSignal

    init(wakeup: WakeupSignal) {
        self.wakeup = wakeup
    }

    /// A batch whose records counted `bytes` against the budget was freed (any thread).
    func release(_ bytes: Int) {
        pending.add(bytes, ordering: .sequentiallyConsistent)
        if engineWaits.load(ordering: .sequentiallyConsistent) { wakeup.signal() }
    }

    /// The bytes released since the last call (engine thread).
    func takeReleased() -> Int {
        pending.exchange(0, ordering: .sequentiallyConsistent)
    }
}
