import Synchronization

/// The async shell of `groupBy`: the reader task and the consumers' suspensions.
@usableFromInline final class GroupByStorage<Key: Hashable & Sendable, Element: Sendable>: Sendable {
    @usableFromInline typealias Machine = GroupByStateMachine<Key, Element>
    @usableFromInline let state: Mutex<Machine>
    @usableFromInline let readerTask = Mutex<Task<Void, Never>?>(nil)
    @usableFromInline let makeReader: @Sendable (GroupByStorage) -> Task<Void, Never>

    @inlinable init<Base: AsyncSequence & Sendable>(
        base: Base, maxSubstreams: Int, bufferSize: Int, key: @escaping @Sendable (Element) -> Key
    ) where Base.Element == Element {
        state = Mutex(Machine(maxSubstreams: maxSubstreams, bufferSize: bufferSize))
        makeReader = { storage in Task { await storage.read(base, key: key) } }
    }

    @inlinable func startIfNeeded() {
        state.startReaderIfNeeded(readerTask) { makeReader(self) }
    }

    @inlinable func run(_ deliveries: Machine.Deliveries) {
        for delivery in deliveries { delivery() }
    }

    @inlinable func stop(_ result: (stop: Bool, Machine.Deliveries)) {
        run(result.1)
        if result.stop { readerTask.withLock { $0 }?.cancel() }
    }

    @inlinable func nextSubstream() async throws -> (key: Key, id: Int)? {
        startIfNeeded()
        let result: Result<(key: Key, id: Int)?, any Error>
        switch state.withLock({ $0.nextSubstream() }) {
        case .deliver(let value):
            result = value
        case .suspend:
            result = await withTaskCancellationHandler {
                await withUnsafeContinuation { (continuation: Machine.OuterContinuation) in
                    if case .deliver(let value) = state.withLock({ $0.suspendOuter(continuation) }) {
                        continuation.resume(returning: value)
                    }
                }
            } onCancel: {
                self.stop(self.state.withLock { $0.cancelOuter() })
            }
        }
        return try result.get()
    }

    @inlinable func next(sub id: Int) async throws -> Element? {
        let result: Result<Element?, any Error>
        switch state.withLock({ $0.next(sub: id) }) {
        case .deliver(let value, let reader):
            reader?.resume(returning: true)
            result = value
        case .suspend:
            result = await withTaskCancellationHandler {
                await withUnsafeContinuation { (continuation: Machine.SubContinuation) in
                    if case .deliver(let value, let reader) = state.withLock({ $0.suspend(sub: id, continuation) }) {
                        reader?.resume(returning: true)
                        continuation.resume(returning: value)
                    }
                }
            } onCancel: {
                self.cancel(sub: id)
            }
        }
        return try result.get()
    }

    @inlinable func cancel(sub id: Int) {
        stop(state.withLock { $0.cancel(sub: id) })
    }

    @inlinable func cancelOuter() {
        stop(state.withLock { $0.cancelOuter() })
    }

    @inlinable func read<Base: AsyncSequence & Sendable>(
        _ base: Base, key: @Sendable (Element) -> Key
    ) async where Base.Element == Element {
        await state.runReader(base, deliver: run) { element in
            let k = key(element)
            let routed = state.withLock { state -> (Machine.Deliveries, Bool) in
                let result = state.route(element, key: k)
                return (result.0, result.failed)
            }
            run(routed.0)
            return routed.1
        }
    }
}
