import Synchronization

/// What the reader task of a fan-out-like stage does next.
/// `.release`: the element it holds can now go on (call `releaseHeld()`).
@usableFromInline enum HoldingReaderAction { case pull, release, suspend, stop }

/// The part of a stage's pure state that the shared reader loop drives: one
/// reader task pulls the upstream and may hold one element until its consumer
/// has room (broadcast, partition, balance, groupBy).
@usableFromInline protocol HoldingReaderMachine {
    associatedtype Deliveries
    var started: Bool { get set }
    var cancelled: Bool { get }
    /// The parked reader, resumed by the machine when it may go on.
    var reader: UnsafeContinuation<Bool, Never>? { get set }
    mutating func readerWantsToPull() -> HoldingReaderAction
    mutating func releaseHeld() -> Deliveries
    mutating func finish(_ error: (any Error)?) -> Deliveries
}

extension HoldingReaderMachine {
    /// Parks the reader only if, under the same lock, it still may not go on.
    @inlinable mutating func readerSuspend(_ continuation: UnsafeContinuation<Bool, Never>) -> HoldingReaderAction {
        let action = readerWantsToPull()
        if case .suspend = action { reader = continuation }
        return action
    }
}

extension Mutex where Value: HoldingReaderMachine {
    /// Starts the reader task on the first demand; a stage cancelled before
    /// that never starts it, and one cancelled while starting cancels it.
    @inlinable borrowing func startReaderIfNeeded(
        _ readerTask: borrowing Mutex<Task<Void, Never>?>, _ makeReader: () -> Task<Void, Never>
    ) {
        let start = withLock { state -> Bool in
            if state.started || state.cancelled { return false }
            state.started = true
            return true
        }
        guard start else { return }
        let task = makeReader()
        readerTask.withLock { $0 = task }
        if withLock({ $0.cancelled }) { task.cancel() }
    }

    /// The reader loop: pulls `base` only while the machine lets it, suspends
    /// (back-pressure) while a held element has no room, and hands each
    /// element to `route`, which delivers it and says whether to stop.
    @inlinable borrowing func runReader<Base: AsyncSequence & Sendable>(
        _ base: Base, deliver: (Value.Deliveries) -> Void, route: (Base.Element) -> Bool
    ) async {
        var iterator = base.makeAsyncIterator()
        while true {
            switch withLock({ $0.readerWantsToPull() }) {
            case .stop:
                return
            case .pull:
                break
            case .release:
                deliver(withLock { $0.releaseHeld() })
                continue
            case .suspend:
                let proceed = await withUnsafeContinuation { (continuation: UnsafeContinuation<Bool, Never>) in
                    switch withLock({ $0.readerSuspend(continuation) }) {
                    case .pull, .release: continuation.resume(returning: true)
                    case .stop: continuation.resume(returning: false)
                    case .suspend: break
                    }
                }
                if !proceed { return }
                continue
            }
            do {
                guard let element = try await iterator.next() else {
                    deliver(withLock { $0.finish(nil) })
                    return
                }
                if route(element) { return }
            } catch {
                deliver(withLock { $0.finish(error) })
                return
            }
        }
    }
}
