import Synchronization

/// The async shell of a fan-out stage: the reader task and the branches' suspensions.
@usableFromInline final class FanOutStorage<Element: Sendable>: Sendable {
    @usableFromInline let state: Mutex<FanOutStateMachine<Element>>
    @usableFromInline let readerTask = Mutex<Task<Void, Never>?>(nil)
    @usableFromInline let makeReader: @Sendable (FanOutStorage<Element>) -> Task<Void, Never>

    @inlinable init<Base: AsyncSequence & Sendable>(
        base: Base, branches: Int, bufferSize: Int, routing: FanOutRouting<Element>
    ) where Base.Element == Element {
        state = Mutex(FanOutStateMachine(branches: branches, bufferSize: bufferSize, routing: routing))
        makeReader = { storage in Task { await storage.read(base) } }
    }

    @inlinable func startIfNeeded() {
        state.startReaderIfNeeded(readerTask) { makeReader(self) }
    }

    @inlinable func next(branch: Int) async throws -> Element? {
        startIfNeeded()
        let result: Result<Element?, any Error>
        switch state.withLock({ $0.next(branch: branch) }) {
        case .deliver(let value, let reader):
            reader?.resume(returning: true)
            result = value
        case .suspend:
            result = await withTaskCancellationHandler {
                await withUnsafeContinuation { (continuation: FanOutStateMachine<Element>.BranchContinuation) in
                    if case .deliver(let value, let reader) = state.withLock({
                        $0.suspend(branch: branch, continuation)
                    }) {
                        reader?.resume(returning: true)
                        continuation.resume(returning: value)
                    }
                }
            } onCancel: {
                self.cancel(branch: branch)
            }
        }
        return try result.get()
    }

    @inlinable func cancel(branch: Int) {
        let (stop, reader, waiter) = state.withLock { $0.cancel(branch: branch) }
        waiter?.resume(returning: .success(nil))
        reader?.resume(returning: !stop)
        if stop { readerTask.withLock { $0 }?.cancel() }
    }

    @inlinable func deliver(_ deliveries: FanOutStateMachine<Element>.Deliveries) {
        for (continuation, value) in deliveries { continuation.resume(returning: value) }
    }

    @inlinable func read<Base: AsyncSequence & Sendable>(_ base: Base) async where Base.Element == Element {
        await state.runReader(base, deliver: deliver) { element in
            switch state.withLock({ $0.route(element) }) {
            case .routed(let deliveries):
                deliver(deliveries)
                return false
            case .failed(let deliveries):
                deliver(deliveries)
                return true
            }
        }
    }
}
