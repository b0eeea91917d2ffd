import Synchronization

/// The async shell of ``AsyncEventTimeMergeSequence``: one task per input pushes into the
/// state machine (waiting while its queue is full), one consumer takes from it, and a timer
/// wakes the consumer when an input holding the merge back turns idle.
final class EventTimeMergeStorage<Element: Sendable, C: Clock>: Sendable where C.Duration == Duration {
    typealias Machine = EventTimeMergeStateMachine<Element, C.Instant>

    struct State {
        var machine: Machine
        /// The consumer, waiting for something to change.
        var consumer: UnsafeContinuation<Void, Never>? = nil
        /// Bumped on every change, so a consumer about to wait sees what happened since it looked.
        var version: UInt64 = 0
        /// Producers waiting for room, with the element they hold.
        var parked: [Int: (time: EventTime, element: Element, continuation: UnsafeContinuation<Bool, Never>)] = [:]
        var failure: (any Error)? = nil
        var cancelled = false
    }

    let clock: C
    let state: Mutex<State>
    let tasks = Mutex<[Task<Void, Never>]>([])

    init(inputCount: Int, bufferSize: Int, idleTimeout: Duration?, clock: C) {
        self.clock = clock
        state = Mutex(
            State(
                machine: Machine(
                    inputCount: inputCount, bufferSize: bufferSize, idleTimeout: idleTimeout, now: clock.now)))
    }

    func start<Upstream: AsyncSequence & Sendable>(
        _ upstreams: [Upstream], time: @escaping @Sendable (Element) -> EventTime
    )
    where Upstream.Element == Element {
        let started = upstreams.enumerated().map { index, upstream in
            Task { await self.produce(index, upstream, time: time) }
        }
        tasks.withLock { $0 = started }
        if state.withLock({ $0.cancelled }) { started.forEach { $0.cancel() } }
    }

    enum Step {
        case element(Element)
        case end
        case fail(any Error)
        case wait(C.Instant?, version: UInt64)
    }

    func next() async throws -> Element? {
        while true {
            var resume: UnsafeContinuation<Bool, Never>? = nil
            let step: Step = state.withLock { state in
                if state.cancelled { return .end }
                if let failure = state.failure {
                    state.cancelled = true
                    return .fail(failure)
                }
                let now = clock.now
                switch state.machine.decide(now: now) {
                case .finished:
                    return .end
                case .wait(let deadline):
                    return .wait(deadline, version: state.version)
                case .emit(let index):
                    let element = state.machine.take(index, now: now)
                    if let parked = state.parked.removeValue(forKey: index) {
                        state.machine.push(index, time: parked.time, element: parked.element)
                        resume = parked.continuation
                    }
                    return element.map { .element($0) } ?? .end
                }
            }
            resume?.resume(returning: true)
            switch step {
            case .element(let element): return element
            case .end: return nil
            case .fail(let error):
                cancel()
                throw error
            case .wait(let deadline, let version):
                await wait(until: deadline, unlessChangedSince: version)
            }
        }
    }

    /// Suspends until something changes (an input sends or ends) or `deadline` passes.
    func wait(until deadline: C.Instant?, unlessChangedSince version: UInt64) async {
        let timer = deadline.map { deadline in
            Task {
                do { try await clock.sleep(until: deadline, tolerance: nil) } catch { return }
                self.wake()
            }
        }
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                let waitNow = state.withLock { state in
                    guard state.version == version, !state.cancelled else { return false }
                    state.consumer = continuation
                    return true
                }
                if !waitNow { continuation.resume() }
            }
        } onCancel: {
            self.cancel()
        }
        timer?.cancel()
    }

    /// Something changed: the consumer looks again.
    func wake() {
        state.withLock { state in
            state.version &+= 1
            return state.consumer.take()
        }?.resume()
    }

    func produce<Upstream: AsyncSequence & Sendable>(
        _ index: Int, _ upstream: Upstream, time: @Sendable (Element) -> EventTime
    ) async
    where Upstream.Element == Element {
        var iterator = upstream.makeAsyncIterator()
        do {
            while let element = try await iterator.next() {
                let eventTime = time(element)
                let proceed = await withUnsafeContinuation { (continuation: UnsafeContinuation<Bool, Never>) in
                    let (proceed, consumer): (Bool?, UnsafeContinuation<Void, Never>?) = state.withLock { state in
                        if state.cancelled || state.failure != nil { return (false, nil) }
                        guard state.machine.hasRoom(index) else {
                            state.parked[index] = (eventTime, element, continuation)
                            return (nil, nil)
                        }
                        state.machine.push(index, time: eventTime, element: element)
                        state.version &+= 1
                        return (true, state.consumer.take())
                    }
                    consumer?.resume()
                    if let proceed { continuation.resume(returning: proceed) }
                }
                // A parked element was pushed by the consumer, which also looked again.
                if !proceed { return }
            }
            finished(index, nil)
        } catch {
            finished(index, error)
        }
    }

    func finished(_ index: Int, _ error: (any Error)?) {
        state.withLock { state in
            state.machine.finish(index)
            if let error, state.failure == nil, !state.cancelled { state.failure = error }
            state.version &+= 1
            return state.consumer.take()
        }?.resume()
    }

    /// The consumer stopped: producers and the consumer are released, upstreams cancelled.
    func cancel() {
        let (consumer, parked) = state.withLock { state in
            state.cancelled = true
            defer { state.parked.removeAll() }
            return (state.consumer.take(), state.parked.values.map(\.continuation))
        }
        consumer?.resume()
        parked.forEach { $0.resume(returning: false) }
        cancelProducers()
    }

    func cancelProducers() {
        tasks.withLock { $0 }.forEach { $0.cancel() }
    }
}

/// Cancels an event-time merge when its consumer's iterator goes away.
final class EventTimeMergeLifetime<Element: Sendable, C: Clock>: Sendable where C.Duration == Duration {
    let storage: EventTimeMergeStorage<Element, C>
    init(_ storage: EventTimeMergeStorage<Element, C>) { self.storage = storage }
    deinit { storage.cancel() }
}
