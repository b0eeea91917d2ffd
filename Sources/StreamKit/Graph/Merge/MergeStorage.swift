import Synchronization

/// The async shell of a fan-in stage: one task per upstream, one consumer.
@usableFromInline final class MergeStorage<Element: Sendable>: Sendable {
    @usableFromInline typealias Machine = MergeStateMachine<Element>
    @usableFromInline let state: Mutex<Machine>
    @usableFromInline let tasks = Mutex<[Int: Task<Void, Never>]>([:])
    @usableFromInline let nextTaskID = Atomic<Int>(0)

    @inlinable init(bufferSize: Int) {
        state = Mutex(Machine(bufferSize: bufferSize))
    }

    /// Starts pulling `upstream` into the merge.
    @inlinable func add<Upstream: AsyncSequence & Sendable>(_ upstream: Upstream) where Upstream.Element == Element {
        guard state.withLock({ $0.producerAdded() }) else { return }
        let id = nextTaskID.add(1, ordering: .relaxed).newValue
        let task = Task {
            await self.produce(upstream)
            _ = self.tasks.withLock { $0.removeValue(forKey: id) }
        }
        tasks.withLock { $0[id] = task }
        if state.withLock({ $0.cancelled }) { task.cancel() }
    }

    @inlinable func close() {
        state.withLock { $0.close() }?.resume(returning: .success(nil))
    }

    @inlinable func next() async throws -> Element? {
        let result: Result<Element?, any Error>
        switch state.withLock({ $0.next() }) {
        case .deliver(let value, let producer):
            producer?.resume(returning: true)
            result = value
        case .suspend:
            result = await withTaskCancellationHandler {
                await withUnsafeContinuation { (continuation: Machine.ConsumerContinuation) in
                    if case .deliver(let value, let producer) = state.withLock({ $0.suspend(continuation) }) {
                        producer?.resume(returning: true)
                        continuation.resume(returning: value)
                    }
                }
            } onCancel: {
                self.cancel()
            }
        }
        if case .failure = result { cancel() }
        return try result.get()
    }

    /// Stops every upstream and the consumer.
    @inlinable func cancel() {
        let (consumer, producers) = state.withLock { $0.cancel() }
        consumer?.resume(returning: .success(nil))
        for producer in producers { producer.resume(returning: false) }
        for task in tasks.withLock({ Array($0.values) }) { task.cancel() }
    }

    @inlinable func produce<Upstream: AsyncSequence & Sendable>(_ upstream: Upstream) async
    where Upstream.Element == Element {
        var iterator = upstream.makeAsyncIterator()
        do {
            while let element = try await iterator.next() {
                let (action, handoff) = state.withLock { $0.push(element) }
                switch action {
                case .delivered(let consumer):
                    if let consumer, let handoff { consumer.resume(returning: .success(handoff)) }
                case .stop:
                    finished(nil)
                    return
                case .wait:
                    guard let handoff else { continue }
                    let proceed = await withUnsafeContinuation { (continuation: UnsafeContinuation<Bool, Never>) in
                        let (resumeNow, consumer, element) = state.withLock { $0.park(handoff, continuation) }
                        if let consumer, let element { consumer.resume(returning: .success(element)) }
                        if let resumeNow { continuation.resume(returning: resumeNow) }
                    }
                    if !proceed {
                        finished(nil)
                        return
                    }
                }
            }
            finished(nil)
        } catch {
            finished(error)
        }
    }

    @inlinable func finished(_ error: (any Error)?) {
        if let (consumer, result) = state.withLock({ $0.producerFinished(error) }) {
            consumer.resume(returning: result)
        }
        if error != nil { cancelProducersAfterFailure() }
    }

    @inlinable func cancelProducersAfterFailure() {
        // The merge has failed: the other upstreams are no longer needed.
        for task in tasks.withLock({ Array($0.values) }) { task.cancel() }
    }
}

/// Cancels a merge when its consumer's iterator goes away.
@usableFromInline final class MergeLifetime<Element: Sendable>: Sendable {
    @usableFromInline let storage: MergeStorage<Element>
    @inlinable init(_ storage: MergeStorage<Element>) { self.storage = storage }
    deinit { storage.cancel() }
}
