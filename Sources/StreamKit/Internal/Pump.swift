import Synchronization

/// Runs an upstream in its own task into a bounded buffer that one consumer
/// reads: the shared engine of the operators that must react to something
/// other than the upstream (timers, kill switches, overflow strategies).
///
/// The reader pulls only while the buffer has room (or, for the dropping
/// strategies, keeps pulling and drops), so memory is bounded by `capacity`.
/// Cancelling the pump cancels the reader task and with it the upstream.
@usableFromInline final class Pump<Base: AsyncSequence & Sendable>: Sendable where Base.Element: Sendable {
    @usableFromInline typealias Element = Base.Element

    @usableFromInline let base: Base
    @usableFromInline let state: Mutex<PumpStateMachine<Element>>
    @usableFromInline let reader = Mutex<Task<Void, Never>?>(nil)

    @usableFromInline let statisticsSink: BufferStatistics?

    @inlinable init(
        _ base: Base, capacity: Int, overflow: PumpOverflow = .backpressure, statistics: BufferStatistics? = nil
    ) {
        self.base = base
        self.state = Mutex(PumpStateMachine(capacity: capacity, overflow: overflow))
        self.statisticsSink = statistics
    }

    @usableFromInline var statistics: (dropped: Int, highWaterMark: Int) {
        state.withLock { ($0.dropped, $0.highWaterMark) }
    }

    /// Starts the reader if it is not running yet (the first demand starts it).
    @inlinable func start() {
        let start = state.withLock { state -> Bool in
            if state.started || state.cancelled { return false }
            state.started = true
            return true
        }
        guard start else { return }
        let task = Task { await self.read() }
        reader.withLock { $0 = task }
        // cancel() may have run before the task was stored.
        if state.withLock({ $0.cancelled }) { task.cancel() }
    }

    /// The next event; suspends until an element, the end, or cancellation.
    @inlinable func next() async -> PumpEvent<Element> {
        start()
        let action = state.withLock { $0.next() }
        switch action {
        case .event(let event, let producer):
            producer?.resume(returning: true)
            return event
        case .suspend:
            return await suspend()
        }
    }

    /// Like ``next()``, but also returns `.tick` once `deadline` passes on `clock` without an event.
    @inlinable func next<C: Clock>(wakeAt deadline: C.Instant, clock: C) async -> PumpEvent<Element> {
        start()
        let action = state.withLock { $0.next() }
        switch action {
        case .event(let event, let producer):
            producer?.resume(returning: true)
            return event
        case .suspend:
            let generation = state.withLock { $0.newWait() }
            let timer = Task {
                do { try await clock.sleep(until: deadline, tolerance: nil) } catch { return }
                self.tick(generation)
            }
            let event = await suspend()
            timer.cancel()
            return event
        }
    }

    @inlinable func suspend() async -> PumpEvent<Element> {
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: PumpStateMachine<Element>.ConsumerContinuation) in
                let action = state.withLock { $0.suspend(continuation) }
                if case .event(let event, let producer) = action {
                    producer?.resume(returning: true)
                    continuation.resume(returning: event)
                }
            }
        } onCancel: {
            self.cancel()
        }
    }

    @inlinable func tick(_ generation: UInt64) {
        state.withLock { $0.tick(generation) }?.resume(returning: .tick)
    }

    /// Ends the stream now with `error` (or completion): the consumer sees it at
    /// once, buffered elements are dropped, the reader and upstream are cancelled.
    @inlinable func abort(_ error: (any Error)?) {
        let (consumer, producer) = state.withLock { $0.abort(error) }
        consumer?.resume(returning: .finished(error))
        producer?.resume(returning: false)
        reader.withLock { $0 }?.cancel()
    }

    /// Stops everything: the consumer gets `.finished(nil)`, the reader task and upstream are cancelled.
    @inlinable func cancel() {
        let (consumer, producer) = state.withLock { $0.cancel() }
        consumer?.resume(returning: .finished(nil))
        producer?.resume(returning: false)
        reader.withLock { $0 }?.cancel()
    }

    @inlinable func read() async {
        var iterator = base.makeAsyncIterator()
        while true {
            switch state.withLock({ $0.readerWantsRoom() }) {
            case .stop:
                return
            case .proceed:
                break
            case .suspend:
                let proceed = await withUnsafeContinuation { (continuation: UnsafeContinuation<Bool, Never>) in
                    switch state.withLock({ $0.readerSuspend(continuation) }) {
                    case .proceed: continuation.resume(returning: true)
                    case .stop: continuation.resume(returning: false)
                    case .suspend: break
                    }
                }
                if !proceed { return }
                continue
            }
            let element: Element?
            do {
                element = try await iterator.next()
            } catch {
                state.withLock { $0.upstreamFinished(error) }.map { $0.0.resume(returning: $0.1) }
                return
            }
            guard let element else {
                state.withLock { $0.upstreamFinished(nil) }.map { $0.0.resume(returning: $0.1) }
                return
            }
            let (action, dropped, highWater) = state.withLock { state in
                let action = state.received(element)
                return (action, state.dropped, state.highWaterMark)
            }
            statisticsSink?.update(dropped: dropped, highWaterMark: highWater)
            switch action {
            case .buffered:
                break
            case .resumeConsumer(let consumer, let event):
                consumer.resume(returning: event)
            case .stop(let consumer, let event):
                consumer?.resume(returning: event)
                return
            }
        }
    }
}

/// Cancels a pump when the iterator that owns it goes away (the consumer stopped iterating).
@usableFromInline final class PumpLifetime<Base: AsyncSequence & Sendable>: Sendable where Base.Element: Sendable {
    @usableFromInline let pump: Pump<Base>
    @inlinable init(_ pump: Pump<Base>) { self.pump = pump }
    deinit { pump.cancel() }
}
