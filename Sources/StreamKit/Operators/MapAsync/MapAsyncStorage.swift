import Synchronization

/// The async shell around ``MapAsyncStateMachine``: worker tasks, the shared
/// upstream iterator, and the consumer's suspension.
@usableFromInline final class MapAsyncStorage<Base: AsyncSequence & Sendable, Output: Sendable>: @unchecked Sendable
where Base.Element: Sendable {
    @usableFromInline typealias Input = Base.Element
    @usableFromInline typealias Machine = MapAsyncStateMachine<Input, Output>

    @usableFromInline let state: Mutex<Machine>
    @usableFromInline let transform: @Sendable (Input) async throws -> Output
    @usableFromInline let base: Base
    /// Touched only by the worker holding the upstream (`upstream == .pulling`), one at a time.
    @usableFromInline var iterator: Base.AsyncIterator?
    @usableFromInline let workers = Mutex<[Task<Void, Never>]>([])

    @inlinable init(
        base: Base, parallelism: Int, ordered: Bool, transform: @escaping @Sendable (Input) async throws -> Output
    ) {
        self.base = base
        self.transform = transform
        self.state = Mutex(Machine(parallelism: parallelism, ordered: ordered))
    }

    /// The most transforms that ran at the same time so far.
    @usableFromInline var maxConcurrency: Int { state.withLock { $0.maxRunning } }

    @usableFromInline var started = false

    @inlinable func next() async throws -> Output? {
        if !started {
            started = true
            iterator = base.makeAsyncIterator()
            perform(state.withLock { $0.start() })
        }
        while true {
            switch state.withLock({ $0.consumerNext() }) {
            case .emit(let result, let wake):
                switch result {
                case .success(let output):
                    perform(wake)
                    return output
                case .failure(let error):
                    terminate()
                    throw error
                }
            case .finished(let error):
                terminate()
                if let error { throw error }
                return nil
            case .suspend:
                switch state.withLock({ $0.consumerHelp() }) {
                case .run(let index, let input, let wake):
                    perform(wake)
                    await runInline(index: index, input: input)
                    continue
                case .pull:
                    let input: Input?
                    do {
                        input = try await iterator!.next()
                    } catch {
                        upstreamEnded(error)
                        continue
                    }
                    guard let input else {
                        upstreamEnded(nil)
                        continue
                    }
                    let pulled = state.withLock { state -> (Int, Machine.Wake) in
                        let result = state.consumerPulled(input)
                        return (result.index, result.wake)
                    }
                    let index = pulled.0
                    perform(pulled.1)
                    await runInline(index: index, input: input)
                    continue
                case .none:
                    break
                }
                await withTaskCancellationHandler {
                    await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                        if !state.withLock({ $0.consumerSuspend(continuation) }) { continuation.resume() }
                    }
                } onCancel: {
                    self.terminate()
                }
            }
        }
    }

    @inlinable func runInline(index: Int, input: Input) async {
        let clock = ContinuousClock()
        let start = clock.now
        let result: Result<Output, any Error>
        do { result = .success(try await transform(input)) } catch { result = .failure(error) }
        // A transform that returns within a few microseconds gains nothing from other threads.
        let cheap = clock.now - start < .microseconds(5)
        perform(
            state.withLock {
                $0.inlineIsCheap = cheap
                return $0.completed(index: index, result)
            })
    }

    @inlinable func perform(_ wake: Machine.Wake) {
        wake.worker?.resume(returning: true)
        wake.consumer?.resume()
        if wake.spawnWorker {
            let task = Task { await self.runWorker() }
            workers.withLock { $0.append(task) }
            if state.withLock({ $0.terminated }) { task.cancel() }
        }
    }

    /// Ends the stage: in-flight transforms are cancelled, parked workers exit.
    @inlinable func terminate() {
        let (parked, consumer) = state.withLock { $0.terminate() }
        for worker in parked { worker.resume(returning: false) }
        consumer?.resume()
        for task in workers.withLock({ $0 }) { task.cancel() }
    }

    @inlinable func runWorker() async {
        state.withLock { $0.workerWoke() }
        while true {
            switch state.withLock({ $0.workerNext() }) {
            case .exit:
                return
            case .process(let index, let input, let wake):
                perform(wake)
                let result: Result<Output, any Error>
                do { result = .success(try await transform(input)) } catch { result = .failure(error) }
                perform(state.withLock { $0.completed(index: index, result) })
            case .pull:
                await pull()
            case .suspend:
                var parked = false
                let proceed = await withUnsafeContinuation { (continuation: UnsafeContinuation<Bool, Never>) in
                    parked = state.withLock({ $0.workerSuspend(continuation) })
                    if !parked { continuation.resume(returning: true) }
                }
                guard proceed else { return }
                // A parked worker resumed with `true` was woken by a counted wake.
                if parked { state.withLock { $0.workerWoke() } }
            }
        }
    }

    /// Pulls while there is room; only the worker that got `.pull` gets here.
    @inlinable func pull() async {
        while true {
            let input: Input?
            do {
                input = try await iterator!.next()
            } catch {
                upstreamEnded(error)
                return
            }
            guard let input else {
                upstreamEnded(nil)
                return
            }
            switch state.withLock({ $0.pulled(input) }) {
            case .pullAgain(let wake):
                perform(wake)
            case .stopPulling(let wake):
                perform(wake)
                return
            }
        }
    }

    @inlinable func upstreamEnded(_ error: (any Error)?) {
        iterator = nil
        let (parked, consumer) = state.withLock { $0.upstreamEnded(error) }
        for worker in parked { worker.resume(returning: false) }
        consumer?.resume()
    }
}
