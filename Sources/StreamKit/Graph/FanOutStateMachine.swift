import DequeModule

/// How a fan-out stage routes each upstream element to its branches.
@usableFromInline enum FanOutRouting<Element>: Sendable {
    /// Every element to every branch still consuming.
    case broadcast
    /// Each element to the one branch the function names.
    case partition(@Sendable (Element) -> Int)
    /// Each element to whichever branch asks first (one shared queue).
    case balance
}

/// The pure state of a fan-out stage (broadcast, partition, balance): one
/// reader pulls the upstream, bounded per-branch queues, one consumer per
/// branch. The reader pulls only when every branch an element may go to has
/// room, so each branch back-pressures the producer and memory is bounded by
/// `branches × bufferSize` (balance: `bufferSize`).
@usableFromInline struct FanOutStateMachine<Element>: HoldingReaderMachine {
    @usableFromInline typealias BranchContinuation = UnsafeContinuation<Result<Element?, any Error>, Never>
    @usableFromInline typealias ReaderContinuation = UnsafeContinuation<Bool, Never>

    @usableFromInline let branchCount: Int
    @usableFromInline let bufferSize: Int
    @usableFromInline let routing: FanOutRouting<Element>
    @usableFromInline var queues: [Deque<Element>]
    @usableFromInline var waiting: [BranchContinuation?]
    @usableFromInline var active: [Bool]
    @usableFromInline var reader: ReaderContinuation?
    /// A partitioned element the reader holds until its branch has room.
    @usableFromInline var held: (branch: Int, element: Element)?
    @usableFromInline var terminal: (any Error)?? = nil
    @usableFromInline var endDelivered: [Bool]
    @usableFromInline var started = false
    @usableFromInline var cancelled = false

    @inlinable init(branches: Int, bufferSize: Int, routing: FanOutRouting<Element>) {
        self.branchCount = branches
        self.bufferSize = max(1, bufferSize)
        self.routing = routing
        let queueCount: Int
        if case .balance = routing { queueCount = 1 } else { queueCount = branches }
        queues = Array(repeating: [], count: queueCount)
        waiting = Array(repeating: nil, count: branches)
        active = Array(repeating: true, count: branches)
        endDelivered = Array(repeating: false, count: branches)
    }

    @inlinable func queueIndex(_ branch: Int) -> Int {
        if case .balance = routing { return 0 }
        return branch
    }

    /// Whether the reader may pull another element now.
    @usableFromInline var readerMayPull: Bool {
        if held != nil { return false }
        switch routing {
        case .partition:
            // The target is known only after pulling; a full target makes the reader hold the element.
            return true
        case .broadcast:
            for branch in 0..<branchCount where active[branch] && queues[branch].count >= bufferSize { return false }
            return true
        case .balance:
            return queues[0].count < bufferSize
        }
    }

    @usableFromInline enum BranchAction {
        case deliver(Result<Element?, any Error>, resumeReader: ReaderContinuation?)
        case suspend
    }

    /// Branch `branch` asks for its next element.
    @inlinable mutating func next(branch: Int) -> BranchAction {
        let q = queueIndex(branch)
        if let element = queues[q].popFirst() {
            return .deliver(.success(element), resumeReader: takeReaderIfRoom())
        }
        if let terminal {
            if endDelivered[branch] { return .deliver(.success(nil), resumeReader: nil) }
            endDelivered[branch] = true
            if let error = terminal { return .deliver(.failure(error), resumeReader: nil) }
            return .deliver(.success(nil), resumeReader: nil)
        }
        if cancelled || !active[branch] { return .deliver(.success(nil), resumeReader: nil) }
        return .suspend
    }

    @inlinable mutating func suspend(branch: Int, _ continuation: BranchContinuation) -> BranchAction {
        let action = next(branch: branch)
        if case .suspend = action { waiting[branch] = continuation }
        return action
    }

    @inlinable mutating func takeReaderIfRoom() -> ReaderContinuation? {
        guard reader != nil else { return nil }
        if let held, queues[queueIndex(held.branch)].count < bufferSize || !active[held.branch] {
            return takeReader()
        }
        if held == nil && readerMayPull { return takeReader() }
        return nil
    }

    @inlinable mutating func takeReader() -> ReaderContinuation? {
        defer { reader = nil }
        return reader
    }

    /// `.release`: the element the reader holds can now go to its branch (call ``releaseHeld()``).
    @usableFromInline typealias ReaderAction = HoldingReaderAction

    /// The reader asks whether it may pull.
    @inlinable mutating func readerWantsToPull() -> ReaderAction {
        if cancelled || terminal != nil { return .stop }
        if let held {
            return active[held.branch] && queues[queueIndex(held.branch)].count >= bufferSize ? .suspend : .release
        }
        return readerMayPull ? .pull : .suspend
    }

    /// The branches to resume with their elements after routing one upstream element.
    @usableFromInline typealias Deliveries = [(BranchContinuation, Result<Element?, any Error>)]

    @usableFromInline enum RouteResult {
        case routed(Deliveries)
        /// The partition function returned an invalid index: the stage fails.
        case failed(Deliveries)
    }

    /// The reader got `element`.
    @inlinable mutating func route(_ element: Element) -> RouteResult {
        var deliveries: Deliveries = []
        switch routing {
        case .broadcast:
            for branch in 0..<branchCount where active[branch] {
                deliver(element, to: branch, &deliveries)
            }
        case .partition(let choose):
            let branch = choose(element)
            guard branch >= 0 && branch < branchCount else {
                return .failed(finish(StreamKitError.partitionIndexOutOfRange(index: branch, count: branchCount)))
            }
            guard active[branch] else { break } // that branch stopped consuming: its elements are dropped
            if queues[branch].count >= bufferSize && waiting[branch] == nil {
                held = (branch, element)
            } else {
                deliver(element, to: branch, &deliveries)
            }
        case .balance:
            if let branch = waiting.firstIndex(where: { $0 != nil }) {
                deliver(element, to: branch, &deliveries)
            } else {
                queues[0].append(element)
            }
        }
        return .routed(deliveries)
    }

    /// The reader resumes after waiting for room: a held element moves to its branch.
    @inlinable mutating func releaseHeld() -> Deliveries {
        guard let held else { return [] }
        self.held = nil
        var deliveries: Deliveries = []
        if active[held.branch] { deliver(held.element, to: held.branch, &deliveries) }
        return deliveries
    }

    @inlinable mutating func deliver(_ element: Element, to branch: Int, _ deliveries: inout Deliveries) {
        if let continuation = waiting[branch] {
            waiting[branch] = nil
            deliveries.append((continuation, .success(element)))
        } else {
            queues[queueIndex(branch)].append(element)
        }
    }

    /// The upstream ended (or the stage failed): waiting branches get the end now, the others after their queues.
    @inlinable mutating func finish(_ error: (any Error)?) -> Deliveries {
        guard terminal == nil else { return [] }
        terminal = .some(error)
        var deliveries: Deliveries = []
        for branch in 0..<branchCount {
            if let continuation = waiting[branch] {
                waiting[branch] = nil
                endDelivered[branch] = true
                deliveries.append((continuation, error.map { .failure($0) } ?? .success(nil)))
            }
        }
        return deliveries
    }

    /// Branch `branch` stopped consuming. Returns whether the whole stage should stop (no branch left) and the reader to resume.
    @inlinable mutating func cancel(branch: Int) -> (
        stopUpstream: Bool, reader: ReaderContinuation?, waiting: BranchContinuation?
    ) {
        guard active[branch] else { return (false, nil, nil) }
        active[branch] = false
        if case .balance = routing {} else { queues[branch].removeAll() }
        let waiter = waiting[branch]
        waiting[branch] = nil
        if !active.contains(true) {
            cancelled = true
            return (true, takeReader(), waiter)
        }
        return (false, takeReaderIfRoom(), waiter)
    }
}
