import DequeModule

/// The pure state of ``AsyncEventTimeMergeSequence``: one bounded queue per input, and which
/// input's element goes next.
///
/// The next element is the earliest head (ties to the lower input index), but only once every
/// input that might still send an earlier one has a head: an input that is empty and not
/// finished holds the merge back (the slowest input sets the pace), until it has been empty for
/// `idleTimeout`; from then on it is idle and skipped until it sends again. Memory: at most
/// `bufferSize` elements per input.
struct EventTimeMergeStateMachine<Element, Instant: InstantProtocol> {
    struct Input {
        var queue: Deque<(time: EventTime, element: Element)> = []
        var finished = false
        /// When its queue last became empty (from the start: when the merge started).
        var emptySince: Instant
    }

    enum Decision: Equatable {
        /// Take the head of this input.
        case emit(Int)
        /// Wait for an input to send, or until this instant (when the input holding the merge back turns idle).
        case wait(until: Instant?)
        /// Every input has finished and every element has been taken.
        case finished
    }

    let bufferSize: Int
    let idleTimeout: Instant.Duration?
    private(set) var inputs: [Input]

    init(inputCount: Int, bufferSize: Int, idleTimeout: Instant.Duration?, now: Instant) {
        self.bufferSize = Swift.max(1, bufferSize)
        self.idleTimeout = idleTimeout
        inputs = Array(repeating: Input(emptySince: now), count: inputCount)
    }

    func decide(now: Instant) -> Decision {
        var earliest: (time: EventTime, index: Int)? = nil
        var holdingBack: Instant? = nil
        var waitingForever = false
        for (index, input) in inputs.enumerated() {
            if let head = input.queue.first {
                if earliest == nil || head.time < earliest!.time { earliest = (head.time, index) }
            } else if !input.finished {
                guard let idleTimeout else {
                    waitingForever = true
                    continue
                }
                let idleAt = input.emptySince.advanced(by: idleTimeout)
                if now < idleAt { holdingBack = Swift.min(holdingBack ?? idleAt, idleAt) }
            }
        }
        if waitingForever { return .wait(until: nil) }
        if let holdingBack { return .wait(until: holdingBack) }
        if let earliest { return .emit(earliest.index) }
        // Only idle inputs are left: wait for any of them to send.
        return inputs.allSatisfy(\.finished) ? .finished : .wait(until: nil)
    }

    /// Whether input `index` has room for another element.
    func hasRoom(_ index: Int) -> Bool { inputs[index].queue.count < bufferSize }

    /// Input `index` sent `element`; the caller checked ``hasRoom(_:)``.
    mutating func push(_ index: Int, time: EventTime, element: Element) {
        inputs[index].queue.append((time, element))
    }

    /// Takes the head of input `index` (after ``decide(now:)`` said `.emit(index)`).
    mutating func take(_ index: Int, now: Instant) -> Element? {
        guard let head = inputs[index].queue.popFirst() else { return nil }
        if inputs[index].queue.isEmpty { inputs[index].emptySince = now }
        return head.element
    }

    /// Input `index` ended.
    mutating func finish(_ index: Int) { inputs[index].finished = true }
}
