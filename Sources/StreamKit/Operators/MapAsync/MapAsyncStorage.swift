import Synchronization

/// The async shell around ``MapAsyncStateMachine``: worker tasks, the shared
/// upstream iterator, and the consumer's suspension.
final class MapAsyncStorage<Base: AsyncSequence & Sendable, Output: Sendable>: @unchecked Sendable
where Base.Element: Sendable {
    typealias Input = Base.Element
    typealias Machine = MapAsyncStateMachine<Input, Output>

    private let state: Mutex<Machine>
    private let transform: @Sendable (Input) async throws -> Output
    private let base: Base
    /// Touched only by the worker holding the upstream (`upstream == .pulling`), one at a time.
    private var iterator: Base.AsyncIterator?
    private let workers = Mutex<[Task<Void, Never>]>([])

    init(base: Base, parallelism: Int, ordered: Bool, transform: @escaping @Sendable (Input) async throws -> Output) {
        self.base = base
        self.transform = transform
        self.state = Mutex(Machine(parallelism: parallelism, ordered: ordered))
    }

    /// The most transforms that ran at the same time so far.
    var maxConcurrency: Int { state.withLock { $0.maxRunning } }

    private var started = false

    func next() async throws -> Output? {
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

    private func perform(_ wake: Machine.Wake) {
        wake.worker?.resume(returning: true)
        wake.consumer?.resume()
        if wake.spawnWorker {
            let task = Task { await self.runWorker() }
            workers.withLock { $0.append(task) }
            if state.withLock({ $0.terminated }) { task.cancel() }
        }
    }

    /// Ends the stage: in-flight transforms are cancelled, parked workers exit.
    func terminate() {
        let (parked, consumer) = state.withLock { $0.terminate() }
        for worker in parked { worker.resume(returning: false) }
        consumer?.resume()
        for task in workers.withLock({ $0 }) { task.cancel() }
    }

    private func runWorker() async {
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
    private func pull() async {
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

    private func upstreamEnded(_ error: (any Error)?) {
        iterator = nil
        let (parked, consumer) = state.withLock { $0.upstreamEnded(error) }
        for worker in parked { worker.resume(returning: false) }
        consumer?.resume()
    }
}
