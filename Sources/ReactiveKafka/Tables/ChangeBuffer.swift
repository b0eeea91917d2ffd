import Synchronization

/// One reader's pending table changes (see ``ChangeBufferState``) and the reader waiting
/// for them. Fed by a ``TableChangeHub``, or redirected into another buffer (a join).
final class ChangeBuffer<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private struct State {
        var buffer = ChangeBufferState<Key, Value>()
        var waiter: UnsafeContinuation<Result<TableChange<Key, Value>?, any Error>, Never>?
        var cancelled = false
        /// Set by ``redirect(_:)``: changes go there instead of into the buffer.
        var forward: (@Sendable ([TableChange<Key, Value>]) -> Void, @Sendable ((any Error)?) -> Void)?
    }

    private let state = Mutex(State())

    init() {}

    /// Adds `changes` and wakes the reader if it waits.
    func offer(_ changes: [TableChange<Key, Value>]) {
        guard !changes.isEmpty else { return }
        var wake: (UnsafeContinuation<Result<TableChange<Key, Value>?, any Error>, Never>, TableChange<Key, Value>)?
        state.withLock { state in
            if let forward = state.forward {
                forward.0(changes)
                return
            }
            state.buffer.offer(changes)
            if let waiter = state.waiter, let change = state.buffer.take() {
                state.waiter = nil
                wake = (waiter, change)
            }
        }
        if let (waiter, change) = wake { waiter.resume(returning: .success(change)) }
    }

    /// Ends the changes after those pending: with `error`, or normally when nil.
    func finish(_ error: (any Error)?) {
        let (waiter, forward) = state.withLock { state in
            state.buffer.finish(error)
            defer { state.waiter = nil }
            return (state.waiter, state.forward?.1)
        }
        forward?(error)
        waiter?.resume(returning: Self.ending(error))
    }

    /// Sends every change (pending and later) to `offer` and the end to `finish` instead.
    /// The forwarding runs under this buffer's lock, so changes keep their order.
    func redirect(
        _ offer: @escaping @Sendable ([TableChange<Key, Value>]) -> Void,
        finish: @escaping @Sendable ((any Error)?) -> Void
    ) {
        state.withLock { state in
            state.forward = (offer, finish)
            var pending: [TableChange<Key, Value>] = []
            while let change = state.buffer.take() { pending.append(change) }
            if !pending.isEmpty { offer(pending) }
            if case .failure(let error)? = state.buffer.end {
                finish(error)
            } else if state.buffer.end != nil {
                finish(nil)
            }
        }
    }

    /// The next change; nil once the table closed; throws its failure, or `CancellationError`.
    func next() async throws -> TableChange<Key, Value>? {
        let result: Result<TableChange<Key, Value>?, any Error> = await withTaskCancellationHandler {
            await withUnsafeContinuation { continuation in
                let ready = state.withLock { state -> Result<TableChange<Key, Value>?, any Error>? in
                    if state.cancelled { return .failure(CancellationError()) }
                    if let change = state.buffer.take() { return .success(change) }
                    if let end = state.buffer.end { return Self.ending(end) }
                    if state.waiter != nil {
                        return .failure(
                            KafkaTableError(
                                .invalidConfiguration,
                                "a table's changes were read by two tasks at once; give each reader its own changes()"))
                    }
                    state.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                state.cancelled = true
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: .failure(CancellationError()))
        }
        return try result.get()
    }

    private static func ending(_ error: (any Error)?) -> Result<TableChange<Key, Value>?, any Error> {
        error.map { .failure($0) } ?? .success(nil)
    }

    private static func ending(_ end: Result<Void, any Error>) -> Result<TableChange<Key, Value>?, any Error> {
        end.map { nil }
    }
}
