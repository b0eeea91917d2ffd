import Synchronization

/// Reading ahead while a transaction commits. A commit suspends producing for
/// the time it takes to flush (tens of milliseconds on a busy cluster); instead
/// of idling, the stage keeps reading and serialising upstream meanwhile, up to
/// `limit` messages, and produces them as soon as the next transaction begins.
///
/// Upstream is read by one side at a time. Normally the pump reads it itself
/// (no hand-over cost per message). When the pump finds the gate closed by a
/// commit, it hands the message in hand and the reading over to a reader task,
/// which reads until the commit is over (or the buffer is full), then hands the
/// reading back. The pump never waits on upstream while it holds a message, so
/// a quiet upstream delays nothing already read; and the reader runs only while
/// the pump cannot, so the two never compete for a core.
final class TransactionalReadAhead<Element: Sendable>: @unchecked Sendable {
    /// Runs on the caller's executor: no executor check per message.
    typealias Pull = nonisolated(nonsending) () async throws -> Element?

    private struct State {
        /// Messages read ahead, oldest first, from `head` on.
        /// Optional, so that taking one moves it out (no copy, no later release).
        var buffer: [Element?] = []
        var head = 0
        var count: Int { buffer.count - head }
        /// The reader holds upstream (is reading, or about to).
        var readerActive = false
        /// A commit is under way: the reader goes on reading.
        var committing = false
        var ended: Result<Void, any Error>?
        var cancelled = false
        var taker: UnsafeContinuation<Void, Never>?
        var reader: UnsafeContinuation<Void, Never>?
    }

    private let state = Mutex(State())
    /// `readerActive || !buffer.isEmpty || ended != nil`: the pump must go through the lock.
    private let handedOver = Atomic<Bool>(false)
    private let limit: Int
    // nonisolated(unsafe): set once by start(), before the pump or the reader task runs; only read after.
    private nonisolated(unsafe) var pull: Pull?
    /// Messages the pump took out of the buffer in one go (one lock for the lot, not one a
    /// message), served from `takenHead` on. The pump's alone.
    // nonisolated(unsafe) (these two): only the pump's calls (next, handOver) touch them; the reader never does.
    private nonisolated(unsafe) var taken: [Element?] = []
    private nonisolated(unsafe) var takenHead = 0

    init(limit: Int) {
        self.limit = max(1, limit)
    }

    /// Sets how upstream is read; called once, before ``runReader()`` and ``next()``.
    func start(_ pull: @escaping Pull) { self.pull = pull }

    // MARK: The pump

    /// Nothing is handed over: the pump may read upstream itself (its per-message path,
    /// without a call into this generic class).
    var readsItself: Bool {
        @inline(__always) get { takenHead == taken.count && !handedOver.load(ordering: .acquiring) }
    }

    private func takeNext() -> Element {
        let element = taken[takenHead].take()!
        takenHead += 1
        if takenHead == taken.count {
            taken.removeAll(keepingCapacity: true)
            takenHead = 0
        }
        return element
    }

    /// The next message, read by the pump itself unless the reader holds upstream or
    /// has buffered messages. Nil once upstream completed.
    /// - Throws: upstream's error, after every message read before it.
    func next() async throws -> Element? {
        if takenHead < taken.count { return takeNext() }
        if !handedOver.load(ordering: .acquiring) { return try await pull!() }
        while true {
            let step = state.withLock { s -> Step in
                if s.count > 0 {
                    // Everything buffered: the pump's `taken` is empty here.
                    swap(&s.buffer, &taken)
                    takenHead = s.head
                    s.buffer.removeAll(keepingCapacity: true)
                    s.head = 0
                    updateHandedOver(s)
                    return .taken
                }
                if s.readerActive { return .wait }
                if let ended = s.ended { return .end(ended) }
                updateHandedOver(s)
                return .readSelf
            }
            switch step {
            case .taken: return takeNext()
            case .end(let result):
                try result.get()
                return nil
            case .readSelf: return try await pull!()
            case .wait:
                await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                    let resumeNow = state.withLock { s -> Bool in
                        if s.count > 0 || !s.readerActive || s.ended != nil { return true }
                        s.taker = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
        }
    }

    private enum Step {
        case taken
        case end(Result<Void, any Error>)
        case wait, readSelf
    }

    /// A commit closed the gate while the pump holds `element`: the reader takes over
    /// upstream (and the element, first in line) until ``commitEnded()``.
    func handOver(_ element: Element) {
        // What the pump took and has not served goes back too, after `element` and before
        // anything read since (so that the limit holds, and the order).
        var back: [Element?] = []
        if takenHead < taken.count {
            back.reserveCapacity(1 + taken.count - takenHead)
            back.append(element)
            back.append(contentsOf: taken[takenHead...])
        }
        taken.removeAll(keepingCapacity: true)
        takenHead = 0
        let reader = state.withLock { s -> UnsafeContinuation<Void, Never>? in
            if !back.isEmpty {
                back.append(contentsOf: s.buffer[s.head...])
                s.buffer = back
                s.head = 0
            } else if s.head > 0 {
                s.head -= 1
                s.buffer[s.head] = element
            } else {
                s.buffer.insert(element, at: 0)
            }
            s.committing = true
            s.readerActive = s.ended == nil
            updateHandedOver(s)
            defer { s.reader = nil }
            return s.readerActive ? s.reader : nil
        }
        reader?.resume()
    }

    /// The commit is over: the reader stops after the read in progress and hands upstream back.
    func commitEnded() {
        state.withLock { $0.committing = false }
    }

    /// The pump stopped: the reader stops too.
    func cancel() {
        let reader = state.withLock { s -> UnsafeContinuation<Void, Never>? in
            s.cancelled = true
            defer { s.reader = nil }
            return s.reader
        }
        reader?.resume()
    }

    private func updateHandedOver(_ s: State) {
        handedOver.store(s.readerActive || s.count > 0 || s.ended != nil, ordering: .releasing)
    }

    // MARK: The reader task

    /// Reads upstream whenever the pump hands it over; returns once cancelled or upstream ended.
    func runReader() async {
        while true {
            // Idle until handed over.
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if s.readerActive || s.cancelled { return true }
                    s.reader = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
            while true {
                let goOn = state.withLock { s -> Bool in
                    if s.cancelled || s.ended != nil || !s.committing || s.count >= limit {
                        s.readerActive = false
                        updateHandedOver(s)
                        return false
                    }
                    return true
                }
                if !goOn {
                    wakeTaker()
                    break
                }
                do {
                    if let element = try await pull!() {
                        state.withLock { s in
                            s.buffer.append(element)
                            updateHandedOver(s)
                        }
                    } else {
                        finish(.success(()))
                    }
                } catch {
                    finish(.failure(error))
                }
                wakeTaker()
            }
            if state.withLock({ $0.cancelled || $0.ended != nil }) { return }
        }
    }

    private func finish(_ result: Result<Void, any Error>) {
        state.withLock { s in
            if s.ended == nil { s.ended = result }
            s.readerActive = false
            updateHandedOver(s)
        }
    }

    private func wakeTaker() {
        let taker = state.withLock { s -> UnsafeContinuation<Void, Never>? in
            defer { s.taker = nil }
            return s.taker
        }
        taker?.resume()
    }
}
