import Synchronization

/// Hands each batch of a table's changes to every reader's ``ChangeBuffer``.
///
/// Publishing never waits for a reader (buffers conflate by key), so a slow reader
/// cannot hold the table back. Readers that go away unsubscribe.
final class TableChangeHub<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private struct State {
        var buffers: [Int: ChangeBuffer<Key, Value>] = [:]
        var nextID = 0
        var end: Result<Void, any Error>?
    }

    private let state = Mutex(State())

    init() {}

    /// A new reader, receiving the changes published from now on.
    func subscribe() -> ChangeSubscription<Key, Value> {
        let buffer = ChangeBuffer<Key, Value>()
        let (id, end) = state.withLock { state -> (Int?, Result<Void, any Error>?) in
            if let end = state.end { return (nil, end) }
            state.nextID += 1
            state.buffers[state.nextID] = buffer
            return (state.nextID, nil)
        }
        if case .failure(let error)? = end { buffer.finish(error) } else if end != nil { buffer.finish(nil) }
        return ChangeSubscription(buffer: buffer) { [weak self] in
            guard let id else { return }
            _ = self?.state.withLock { $0.buffers.removeValue(forKey: id) }
        }
    }

    /// Gives `changes` to every reader.
    func publish(_ changes: [TableChange<Key, Value>]) {
        guard !changes.isEmpty else { return }
        let buffers = state.withLock { Array($0.buffers.values) }
        for buffer in buffers { buffer.offer(changes) }
    }

    /// Ends every reader's changes (after those pending): with `error`, or normally when nil.
    func finish(_ error: (any Error)?) {
        let buffers = state.withLock { state -> [ChangeBuffer<Key, Value>] in
            guard state.end == nil else { return [] }
            state.end = error.map { .failure($0) } ?? .success(())
            defer { state.buffers = [:] }
            return Array(state.buffers.values)
        }
        for buffer in buffers { buffer.finish(error) }
    }
}

/// One reader's registration: its buffer, and leaving the hub when the reader goes away.
final class ChangeSubscription<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    let buffer: ChangeBuffer<Key, Value>
    private let unsubscribe: @Sendable () -> Void
    /// Registrations this one is fed by (the two sides of a join), released with it.
    private let upstream: [any AnyObject & Sendable]

    init(
        buffer: ChangeBuffer<Key, Value>, upstream: [any AnyObject & Sendable] = [],
        unsubscribe: @escaping @Sendable () -> Void
    ) {
        self.buffer = buffer
        self.upstream = upstream
        self.unsubscribe = unsubscribe
    }

    deinit { unsubscribe() }
}
