import DequeModule

/// The pure state of `groupBy`: one reader pulls the upstream and routes
/// each element to the sub-stream of its key; new keys are announced on the
/// outer sequence. Each sub-stream buffers at most `bufferSize` elements;
/// when the target is full the reader holds the element and stops pulling
/// (back-pressure). At most `maxSubstreams` keys are ever opened.
@usableFromInline struct GroupByStateMachine<Key: Hashable & Sendable, Element: Sendable>: HoldingReaderMachine {
    @usableFromInline typealias SubContinuation = UnsafeContinuation<Result<Element?, any Error>, Never>
    @usableFromInline typealias OuterContinuation = UnsafeContinuation<Result<(key: Key, id: Int)?, any Error>, Never>
    @usableFromInline typealias ReaderContinuation = UnsafeContinuation<Bool, Never>

    @usableFromInline struct Sub {
        @usableFromInline var queue: Deque<Element> = []
        @usableFromInline var waiting: SubContinuation? = nil
        @usableFromInline var active = true
        @usableFromInline var endDelivered = false
        @inlinable init() {}
    }

    @usableFromInline let maxSubstreams: Int
    @usableFromInline let bufferSize: Int
    @usableFromInline var ids: [Key: Int] = [:]
    @usableFromInline var subs: [Sub] = []
    @usableFromInline var announcements: Deque<(key: Key, id: Int)> = []
    @usableFromInline var outerWaiting: OuterContinuation? = nil
    @usableFromInline var outerActive = true
    @usableFromInline var outerEndDelivered = false
    @usableFromInline var reader: ReaderContinuation? = nil
    @usableFromInline var held: (id: Int, element: Element)? = nil
    @usableFromInline var terminal: (any Error)?? = nil
    @usableFromInline var started = false
    @usableFromInline var cancelled = false

    @inlinable init(maxSubstreams: Int, bufferSize: Int) {
        self.maxSubstreams = maxSubstreams
        self.bufferSize = Swift.max(1, bufferSize)
    }

    @usableFromInline typealias Deliveries = [() -> Void]

    // MARK: outer

    @usableFromInline enum OuterAction {
        case deliver(Result<(key: Key, id: Int)?, any Error>)
        case suspend
    }

    @inlinable mutating func nextSubstream() -> OuterAction {
        if let announcement = announcements.popFirst() { return .deliver(.success(announcement)) }
        if let terminal {
            if outerEndDelivered { return .deliver(.success(nil)) }
            outerEndDelivered = true
            return .deliver(terminal.map { .failure($0) } ?? .success(nil))
        }
        if cancelled || !outerActive { return .deliver(.success(nil)) }
        return .suspend
    }

    @inlinable mutating func suspendOuter(_ continuation: OuterContinuation) -> OuterAction {
        let action = nextSubstream()
        if case .suspend = action { outerWaiting = continuation }
        return action
    }

    // MARK: sub-streams

    @usableFromInline enum SubAction {
        case deliver(Result<Element?, any Error>, resumeReader: ReaderContinuation?)
        case suspend
    }

    @inlinable mutating func next(sub id: Int) -> SubAction {
        if let element = subs[id].queue.popFirst() {
            return .deliver(.success(element), resumeReader: readerIfUnblocked())
        }
        if let terminal {
            if subs[id].endDelivered { return .deliver(.success(nil), resumeReader: nil) }
            subs[id].endDelivered = true
            return .deliver(terminal.map { .failure($0) } ?? .success(nil), resumeReader: nil)
        }
        if cancelled || !subs[id].active { return .deliver(.success(nil), resumeReader: nil) }
        return .suspend
    }

    @inlinable mutating func suspend(sub id: Int, _ continuation: SubContinuation) -> SubAction {
        let action = next(sub: id)
        if case .suspend = action { subs[id].waiting = continuation }
        return action
    }

    @inlinable mutating func readerIfUnblocked() -> ReaderContinuation? {
        guard reader != nil else { return nil }
        if let held, subs[held.id].active && subs[held.id].queue.count >= bufferSize { return nil }
        defer { reader = nil }
        return reader
    }

    // MARK: reader

    /// `.release`: the held element can now go to its sub-stream (call ``releaseHeld()``).
    @usableFromInline typealias ReaderAction = HoldingReaderAction

    @inlinable mutating func readerWantsToPull() -> ReaderAction {
        if cancelled || terminal != nil { return .stop }
        if let held {
            return subs[held.id].active && subs[held.id].queue.count >= bufferSize ? .suspend : .release
        }
        return .pull
    }

    /// After waiting, moves a held element into its sub-stream.
    @inlinable mutating func releaseHeld() -> Deliveries {
        guard let held else { return [] }
        self.held = nil
        var deliveries: Deliveries = []
        deliver(held.element, to: held.id, &deliveries)
        return deliveries
    }

    @inlinable mutating func deliver(_ element: Element, to id: Int, _ deliveries: inout Deliveries) {
        guard subs[id].active else { return } // that sub-stream's consumer stopped: drop
        if let waiting = subs[id].waiting {
            subs[id].waiting = nil
            deliveries.append { waiting.resume(returning: .success(element)) }
        } else {
            subs[id].queue.append(element)
        }
    }

    /// Routes `element` with key `key`. Returns `nil` deliveries plus `false` when the stage failed.
    @inlinable mutating func route(_ element: Element, key: Key) -> (Deliveries, failed: Bool) {
        var deliveries: Deliveries = []
        if let id = ids[key] {
            if subs[id].active && subs[id].queue.count >= bufferSize && subs[id].waiting == nil {
                held = (id, element)
            } else {
                deliver(element, to: id, &deliveries)
            }
            return (deliveries, false)
        }
        guard outerActive else { return ([], false) } // nobody takes new sub-streams: drop
        guard ids.count < maxSubstreams else {
            return (finish(StreamKitError.tooManySubstreams(max: maxSubstreams)), true)
        }
        let id = subs.count
        ids[key] = id
        var sub = Sub()
        sub.queue.append(element)
        subs.append(sub)
        if let outer = outerWaiting {
            outerWaiting = nil
            deliveries.append { outer.resume(returning: .success((key, id))) }
        } else {
            announcements.append((key, id))
        }
        return (deliveries, false)
    }

    @inlinable mutating func finish(_ error: (any Error)?) -> Deliveries {
        guard terminal == nil else { return [] }
        terminal = .some(error)
        var deliveries: Deliveries = []
        let result: Result<Element?, any Error> = error.map { .failure($0) } ?? .success(nil)
        for id in subs.indices {
            if let waiting = subs[id].waiting {
                subs[id].waiting = nil
                subs[id].endDelivered = true
                deliveries.append { waiting.resume(returning: result) }
            }
        }
        if let outer = outerWaiting {
            outerWaiting = nil
            outerEndDelivered = true
            let outerResult: Result<(key: Key, id: Int)?, any Error> = error.map { .failure($0) } ?? .success(nil)
            deliveries.append { outer.resume(returning: outerResult) }
        }
        return deliveries
    }

    @inlinable var nothingConsumes: Bool {
        !outerActive && !subs.contains(where: \.active) && announcements.isEmpty
    }

    /// A sub-stream's consumer stopped. Returns whether the upstream should stop, and what to resume.
    @inlinable mutating func cancel(sub id: Int) -> (stop: Bool, Deliveries) {
        guard subs[id].active else { return (false, []) }
        subs[id].active = false
        subs[id].queue.removeAll()
        var deliveries: Deliveries = []
        if let waiting = subs[id].waiting {
            subs[id].waiting = nil
            deliveries.append { waiting.resume(returning: .success(nil)) }
        }
        return stopIfIdle(&deliveries)
    }

    /// The outer consumer stopped.
    @inlinable mutating func cancelOuter() -> (stop: Bool, Deliveries) {
        guard outerActive else { return (false, []) }
        outerActive = false
        var deliveries: Deliveries = []
        // Sub-streams announced but never handed out have no consumer.
        for announcement in announcements { subs[announcement.id].active = false }
        announcements.removeAll()
        if let outer = outerWaiting {
            outerWaiting = nil
            deliveries.append { outer.resume(returning: .success(nil)) }
        }
        return stopIfIdle(&deliveries)
    }

    @inlinable mutating func stopIfIdle(_ deliveries: inout Deliveries) -> (stop: Bool, Deliveries) {
        if let reader = readerIfUnblocked() { deliveries.append { reader.resume(returning: true) } }
        if nothingConsumes {
            cancelled = true
            if let reader {
                self.reader = nil
                deliveries.append { reader.resume(returning: false) }
            }
            return (true, deliveries)
        }
        return (false, deliveries)
    }
}
