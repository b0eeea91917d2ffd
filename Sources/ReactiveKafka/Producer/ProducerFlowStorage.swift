import CRdKafka
import Synchronization

/// The concurrent shell of one ``ProducerFlexiFlow`` run: the lock-free
/// ``ProducerFlowRing`` plus the little state that needs a lock (who waits,
/// how upstream ended, whether the engine failed). Also the run's
/// ``DeliveryReceiver``, so delivery reports reach it a batch at a time.
///
/// Fast paths take no lock. Each side that may sleep publishes a "waiting"
/// flag and re-checks the ring under the lock before storing its continuation;
/// each side that makes progress updates the ring, then reads the flag
/// (all sequentially consistent), so a wake-up is never lost. The poll thread
/// wakes the downstream at most once per delivery batch; the downstream wakes
/// the pump (as do delivery reports) only once `resumeThreshold` capacity is free.
@usableFromInline
final class ProducerFlowStorage<Key: Sendable, Value: Sendable, PassThrough: Sendable>: DeliveryReceiver,
    @unchecked Sendable
{
    @usableFromInline typealias Ring = ProducerFlowRing<Key, Value, PassThrough>

    @usableFromInline
    enum Upstream {
        case running
        case finished
        case failed(any Error)
    }

    @usableFromInline
    struct Coordination {
        @usableFromInline var downstream: UnsafeContinuation<Void, Never>?
        @usableFromInline var pump: UnsafeContinuation<Void, Never>?
        @usableFromInline var upstream = Upstream.running
        @usableFromInline var engineFailure: KafkaError?
        @inlinable init() {}
    }

    @usableFromInline let ring: Ring
    /// How much capacity must be free before a waiting pump is resumed (avoids a wake-up per message).
    @usableFromInline let resumeThreshold: Int
    @usableFromInline let coordination = Mutex(Coordination())
    @usableFromInline let downstreamWaiting = Atomic<Bool>(false)
    @usableFromInline let pumpWaiting = Atomic<Bool>(false)
    @usableFromInline let stop = Atomic<Bool>(false)

    @usableFromInline
    init(parallelism: Int) {
        ring = Ring(parallelism: parallelism)
        resumeThreshold = max(1, min(ring.parallelism / 4, 1024))
    }

    // MARK: DeliveryReceiver (poll thread)

    @usableFromInline
    func deliver(_ reports: UnsafeBufferPointer<DeliveryReport>) {
        if ring.deliver(reports) {
            stop.store(true, ordering: .sequentiallyConsistent)
            wakePump()
        } else if pumpWaiting.load(ordering: .sequentiallyConsistent), ring.hasFreeCapacity(resumeThreshold) {
            wakePump()
        }
        if downstreamWaiting.load(ordering: .sequentiallyConsistent), ring.headIsReady() { wakeDownstream() }
    }

    @usableFromInline
    func fail(_ error: KafkaError) {
        coordination.withLock { c in
            if c.engineFailure == nil { c.engineFailure = error }
        }
        stop.store(true, ordering: .sequentiallyConsistent)
        wakePump()
        wakeDownstream()
    }

    // MARK: Pump

    /// Whether the run has failed or was cancelled: the pump pulls nothing more.
    @inlinable
    var shouldStop: Bool { stop.load(ordering: .relaxed) }

    /// Waits until the pump may publish another message; false when it must stop.
    @usableFromInline
    func waitForCapacity() async -> Bool {
        while true {
            if stop.load(ordering: .acquiring) { return false }
            if ring.pumpHasCapacity { return true }
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                let resumeNow = coordination.withLock { c -> Bool in
                    pumpWaiting.store(true, ordering: .sequentiallyConsistent)
                    if stop.load(ordering: .sequentiallyConsistent) || ring.pumpHasCapacity {
                        pumpWaiting.store(false, ordering: .relaxed)
                        return true
                    }
                    c.pump = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
    }

    /// The pump published a message that is already complete (no records) or failed.
    @inlinable
    func pumpCompletedHead() {
        if downstreamWaiting.load(ordering: .sequentiallyConsistent) { wakeDownstream() }
    }

    /// The pump stopped: upstream completed (`error == nil`), failed, or a serialiser threw.
    /// The downstream emits what is in flight, then completes or fails.
    @usableFromInline
    func pumpFinished(error: (any Error)?) {
        coordination.withLock { c in
            if case .running = c.upstream { c.upstream = error.map { .failed($0) } ?? .finished }
        }
        wakeDownstream()
    }

    // MARK: Downstream

    @usableFromInline
    enum Next {
        case emit
        case finish
        case fail(any Error)
        case cancelled
    }

    /// Gives back the capacity of everything handed out so far, then waits
    /// until results are ready (appended to `buffer`), the run ends, or the task is cancelled.
    @inlinable
    nonisolated(nonsending) func next(into buffer: Ring.ResultBuffer) async -> Next {
        ring.giveBack()
        if pumpWaiting.load(ordering: .sequentiallyConsistent), ring.hasFreeCapacity(resumeThreshold) { wakePump() }
        while true {
            if Task.isCancelled { return cancel() }
            switch ring.pop(into: buffer) {
            case .emitted: return .emit
            case .failed(let error):
                terminate()
                // After a fatal error librdkafka fails queued records with the underlying
                // code; the fatal error is what the user needs to see.
                return .fail(coordination.withLock { $0.engineFailure } ?? error)
            case .nothingReady: break
            }
            var outcome: Next?
            await withTaskCancellationHandler {
                await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                    let resumeNow = coordination.withLock { c -> Bool in
                        downstreamWaiting.store(true, ordering: .sequentiallyConsistent)
                        if ring.headIsReady() || Task.isCancelled {
                            downstreamWaiting.store(false, ordering: .relaxed)
                            return true
                        }
                        if ring.isDrained {
                            switch c.upstream {
                            case .finished: outcome = .finish
                            case .failed(let error): outcome = .fail(error)
                            case .running: break
                            }
                        }
                        if outcome == nil, let failure = c.engineFailure { outcome = .fail(failure) }
                        if outcome != nil {
                            downstreamWaiting.store(false, ordering: .relaxed)
                            return true
                        }
                        c.downstream = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            } onCancel: {
                wakeDownstream()
            }
            if let outcome {
                terminate()
                return outcome
            }
        }
    }

    /// The downstream is gone (cancelled or dropped): stop the pump.
    @usableFromInline
    func cancelDownstream() { terminate() }

    /// librdkafka refused a record of the message at `position` at once: the message fails.
    @usableFromInline
    func recordRefused(position: Int, code: rd_kafka_resp_err_t, topic: String, partition: Int32?) {
        let report = DeliveryReport(token: 0, error: code, partition: partition ?? -1, offset: -1, timestamp: nil)
        ring.fail(position: position, error: report.failure(topic: topic))
        pumpCompletedHead()
    }

    @usableFromInline
    func cancel() -> Next {
        terminate()
        return .cancelled
    }

    @usableFromInline
    func terminate() {
        stop.store(true, ordering: .sequentiallyConsistent)
        wakePump()
    }

    // MARK: Wake-ups

    @usableFromInline
    func wakeDownstream() {
        let continuation = coordination.withLock { c -> UnsafeContinuation<Void, Never>? in
            defer { c.downstream = nil }
            if c.downstream != nil { downstreamWaiting.store(false, ordering: .relaxed) }
            return c.downstream
        }
        continuation?.resume()
    }

    @usableFromInline
    func wakePump() {
        let continuation = coordination.withLock { c -> UnsafeContinuation<Void, Never>? in
            defer { c.pump = nil }
            if c.pump != nil { pumpWaiting.store(false, ordering: .relaxed) }
            return c.pump
        }
        continuation?.resume()
    }
}
