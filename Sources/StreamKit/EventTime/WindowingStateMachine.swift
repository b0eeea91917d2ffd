import DequeModule
import HeapModule

/// The pure state of ``AsyncWindowedSequence``: open windows per key, the watermark, and the
/// timers that close windows when the watermark passes their end plus the allowed lateness.
///
/// State is bounded by the open windows: a window opens with its first element and is removed
/// when it closes, so at most the windows whose `end + allowedLateness` is after the watermark
/// are held (per key: `size / advance` windows per `size + outOfOrderness + allowedLateness`
/// of event time for hopping windows, one per session). One timer per key is live; a timer
/// left behind when a session merges or an earlier window opens is dropped when the
/// watermark reaches it.
@usableFromInline struct WindowingStateMachine<Key: Hashable, Element, Value> {
    @usableFromInline typealias Output = Windowed<Key, Value, Element>

    @usableFromInline struct OpenWindow {
        @usableFromInline var window: EventTimeWindow
        @usableFromInline var value: Value
        @inlinable init(window: EventTimeWindow, value: Value) {
            self.window = window
            self.value = value
        }
    }

    /// "Close `key`'s earliest windows at `close`"; `sequence` orders equal times and marks the live timer.
    @usableFromInline struct Timer: Comparable {
        @usableFromInline var close: EventTime
        @usableFromInline var sequence: UInt64
        @usableFromInline var key: Key
        @inlinable init(close: EventTime, sequence: UInt64, key: Key) {
            self.close = close
            self.sequence = sequence
            self.key = key
        }
        @inlinable static func == (lhs: Timer, rhs: Timer) -> Bool { lhs.sequence == rhs.sequence }
        @inlinable static func < (lhs: Timer, rhs: Timer) -> Bool {
            (lhs.close, lhs.sequence) < (rhs.close, rhs.sequence)
        }
    }

    @usableFromInline enum Assigner {
        case hopping(size: Int64, advance: Int64)
        case session(gap: Int64)
    }

    @usableFromInline let assigner: Assigner
    @usableFromInline let lateness: Int64
    @usableFromInline let earlyUpdates: Bool
    @usableFromInline let aggregation: WindowAggregation<Element, Value>
    @usableFromInline var clock: BoundedOutOfOrderness
    /// Each key's open windows, sorted by start (and so by end: they have one size, or do not overlap).
    @usableFromInline var open: [Key: [OpenWindow]] = [:]
    @usableFromInline var scheduled: [Key: Timer] = [:]
    @usableFromInline var timers = Heap<Timer>()
    @usableFromInline var nextSequence: UInt64 = 0
    /// How many windows are open, over all keys.
    @usableFromInline var openWindowCount = 0

    @usableFromInline init(
        windows: EventTimeWindows, outOfOrderness: Duration, allowedLateness: Duration, earlyUpdates: Bool,
        aggregation: WindowAggregation<Element, Value>
    ) throws(StreamKitError) {
        switch windows.kind {
        case .hopping(let size, let advance):
            let size = try size.eventTimeMilliseconds("window size", minimum: 1)
            let advance = try advance.eventTimeMilliseconds("hopping window advance", minimum: 1)
            try requireArgument(
                advance <= size, "hopping(size: \(size) ms, advance: \(advance) ms): advance must not exceed size")
            assigner = .hopping(size: size, advance: advance)
        case .session(let gap):
            assigner = .session(gap: try gap.eventTimeMilliseconds("session gap", minimum: 1))
            try requireArgument(
                aggregation.merge != nil,
                "session windows need a WindowAggregation with merge: (two sessions an element bridges become one)")
        }
        clock = BoundedOutOfOrderness(outOfOrderness: try outOfOrderness.eventTimeMilliseconds("outOfOrderness"))
        lateness = try allowedLateness.eventTimeMilliseconds("allowedLateness")
        self.earlyUpdates = earlyUpdates
        self.aggregation = aggregation
    }

    @inlinable var watermark: EventTime { clock.watermark }

    /// Adds `element` to its windows (or to the side output if they have all closed), then
    /// closes the windows the watermark has passed.
    @inlinable mutating func receive(_ element: Element, key: Key, time: EventTime, into output: inout Deque<Output>) {
        let accepted =
            switch assigner {
            case .hopping(let size, let advance):
                addToHoppingWindows(element, key: key, time: time, size: size, advance: advance, into: &output)
            case .session(let gap): addToSession(element, key: key, time: time, gap: gap, into: &output)
            }
        if !accepted { output.append(.late(element)) }
        if clock.observe(time) { closeWindows(into: &output) }
    }

    /// The input ended: every open window closes, in order of its end.
    @inlinable mutating func finish(into output: inout Deque<Output>) {
        clock.end()
        closeWindows(into: &output)
    }

    @inlinable mutating func addToHoppingWindows(
        _ element: Element, key: Key, time: EventTime, size: Int64, advance: Int64, into output: inout Deque<Output>
    ) -> Bool {
        let watermark = clock.watermark
        var windows = open.removeValue(forKey: key) ?? []
        var accepted = false
        // The windows holding `time` start at multiples of `advance` in (time - size, time].
        var start = Self.floor(time - size, toMultipleOf: advance) + advance
        while start <= time {
            let window = EventTimeWindow(start: start, end: start + size)
            if window.end + lateness > watermark {
                accepted = true
                let index: Int
                if let existing = windows.firstIndex(where: { $0.window.start == start }) {
                    index = existing
                } else {
                    index = windows.firstIndex(where: { $0.window.start > start }) ?? windows.endIndex
                    windows.insert(OpenWindow(window: window, value: aggregation.initial()), at: index)
                    openWindowCount += 1
                    schedule(key, close: window.end + lateness)
                }
                aggregation.add(&windows[index].value, element)
                if earlyUpdates {
                    output.append(
                        .window(WindowResult(key: key, window: window, value: windows[index].value, isFinal: false)))
                }
            }
            let next = start + advance
            if next == start { break } // saturated at the end of time
            start = next
        }
        if !windows.isEmpty { open[key] = windows }
        return accepted
    }

    @inlinable mutating func addToSession(
        _ element: Element, key: Key, time: EventTime, gap: Int64, into output: inout Deque<Output>
    ) -> Bool {
        var windows = open.removeValue(forKey: key) ?? []
        defer { if !windows.isEmpty { open[key] = windows } }
        var merged = EventTimeWindow(start: time, end: time + gap)
        let overlapping = windows.indices.filter {
            windows[$0].window.start < merged.end && merged.start < windows[$0].window.end
        }
        if overlapping.isEmpty, merged.end + lateness <= clock.watermark { return false }
        var value: Value
        if let first = overlapping.first, let last = overlapping.last, let merge = aggregation.merge {
            merged.start = Swift.min(merged.start, windows[first].window.start)
            merged.end = Swift.max(merged.end, windows[last].window.end)
            value = windows[first].value
            for index in overlapping.dropFirst() { merge(&value, windows[index].value) }
            windows.removeSubrange(first...last)
            openWindowCount -= overlapping.count
        } else {
            value = aggregation.initial()
        }
        aggregation.add(&value, element)
        let index = windows.firstIndex(where: { $0.window.start > merged.start }) ?? windows.endIndex
        windows.insert(OpenWindow(window: merged, value: value), at: index)
        openWindowCount += 1
        schedule(key, close: merged.end + lateness)
        if earlyUpdates { output.append(.window(WindowResult(key: key, window: merged, value: value, isFinal: false))) }
        return true
    }

    /// Makes sure `key` has a live timer no later than `close`.
    @inlinable mutating func schedule(_ key: Key, close: EventTime) {
        if let current = scheduled[key], current.close <= close { return }
        nextSequence += 1
        let timer = Timer(close: close, sequence: nextSequence, key: key)
        scheduled[key] = timer
        timers.insert(timer)
    }

    /// Emits and removes every window whose `end + lateness` the watermark has reached, earliest first.
    @inlinable mutating func closeWindows(into output: inout Deque<Output>) {
        let watermark = clock.watermark
        while let timer = timers.min, timer.close <= watermark {
            timers.removeMin()
            guard scheduled[timer.key] == timer, var windows = open.removeValue(forKey: timer.key) else { continue }
            scheduled[timer.key] = nil
            // Only the windows due at this timer: a later one waits for its own turn among the other keys.
            let due = windows.prefix { $0.window.end + lateness <= timer.close }
            for closed in due {
                output.append(
                    .window(WindowResult(key: timer.key, window: closed.window, value: closed.value, isFinal: true)))
            }
            windows.removeFirst(due.count)
            openWindowCount -= due.count
            if let earliest = windows.first {
                open[timer.key] = windows
                schedule(timer.key, close: earliest.window.end + lateness)
            }
        }
    }

    /// The largest multiple of `step` not after `time` (saturating at the start of time).
    @inlinable static func floor(_ time: EventTime, toMultipleOf step: Int64) -> EventTime {
        let remainder = time.milliseconds % step
        return remainder >= 0 ? time - remainder : time - remainder - step
    }
}
