import Foundation

/// The thread one ``ProducerFlexiFlow`` run's pump task runs on (its task executor), so that
/// the run knows when the pump is suspended: after each stretch the pump ran, when no job is
/// queued, ``whenIdle`` is called on the same thread.
///
/// Why: the pump collects records into a ``ProducerFlowBatch`` instead of producing each at
/// once, and collected records must not wait while the pump waits (for upstream, for
/// capacity, for queue space). Suspending is the one moment the pump cannot flush itself, and
/// on the cooperative pool no code runs at that moment; here ``whenIdle`` flushes then, so a
/// record is handed to librdkafka as soon as the pump stops, as it was when produced one by one.
///
/// The upstream's own (nonisolated) code runs on this thread too, as it ran in the pump task
/// before; structured child tasks it creates inherit this executor (unstructured `Task`s do not).
/// The thread sleeps on a condition while no job is queued and ends after ``shutdown()``.
@usableFromInline
final class ProducerPumpExecutor: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var open = true
    // Tasks other than the pump that will still run here (see `hold()`).
    private var holds = 0
    /// Called on the executor's thread when it has run every queued job (set before the pump starts).
    @usableFromInline nonisolated(unsafe) var whenIdle: (() -> Void)?

    @usableFromInline
    init() {
        let thread = Thread { [self] in run() }
        thread.name = "rkafka-pump"
        thread.start()
    }

    @usableFromInline
    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Ends the thread once the queued jobs have run (the pump calls it as its last step).
    @usableFromInline
    func shutdown() {
        condition.lock()
        open = false
        condition.signal()
        condition.unlock()
    }

    /// Keeps the thread alive after ``shutdown()`` until ``release()``: for a task that is
    /// waiting to run on this executor.
    @usableFromInline
    func hold() {
        condition.lock()
        holds += 1
        condition.unlock()
    }

    @usableFromInline
    func release() {
        condition.lock()
        holds -= 1
        condition.signal()
        condition.unlock()
    }

    private func run() {
        var running: [UnownedJob] = []
        while true {
            condition.lock()
            while jobs.isEmpty && (open || holds > 0) { condition.wait() }
            if jobs.isEmpty {
                condition.unlock()
                break
            }
            swap(&running, &jobs)
            condition.unlock()
            for job in running { job.runSynchronously(on: asUnownedTaskExecutor()) }
            running.removeAll(keepingCapacity: true)
            condition.lock()
            let idle = jobs.isEmpty
            condition.unlock()
            if idle { whenIdle?() }
        }
        whenIdle = nil
    }
}
