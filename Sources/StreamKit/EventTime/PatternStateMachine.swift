import DequeModule
import HeapModule

/// An element held until the watermark passes it, so elements are processed in event-time order.
struct TimeOrdered<Key, Element>: Comparable {
    var time: EventTime
    var sequence: UInt64
    var key: Key
    var element: Element
    static func == (lhs: Self, rhs: Self) -> Bool { lhs.sequence == rhs.sequence }
    static func < (lhs: Self, rhs: Self) -> Bool { (lhs.time, lhs.sequence) < (rhs.time, rhs.sequence) }
}

/// The pure state of ``AsyncPatternMatchSequence``.
///
/// Elements wait in a reorder buffer until the watermark (latest time seen minus
/// `outOfOrderness`) passes them, then are processed in event-time order (ties in arrival
/// order). State: the reorder buffer (the elements of the last `outOfOrderness`), and per key
/// the partial matches started within the pattern's bound; each partial match ends when it
/// completes, when an absent step's event shows up, or when the watermark passes its start plus
/// the bound. One deadline per partial match is kept until the watermark passes it.
struct PatternStateMachine<Key: Hashable, Element> {
    typealias Output = PatternOutput<Key, Element>

    struct Partial {
        var id: UInt64
        var start: EventTime
        var events: [Element]
        /// The index of the step it waits for.
        var next: Int
    }

    struct Deadline: Comparable {
        var time: EventTime
        var id: UInt64
        var key: Key
        static func == (lhs: Self, rhs: Self) -> Bool { lhs.id == rhs.id }
        static func < (lhs: Self, rhs: Self) -> Bool { (lhs.time, lhs.id) < (rhs.time, rhs.id) }
    }

    let steps: [EventPattern<Element>.Step]
    let bound: Int64
    private(set) var clock: BoundedOutOfOrderness
    private var reorder = Heap<TimeOrdered<Key, Element>>()
    private(set) var partials: [Key: [Partial]] = [:]
    private var deadlines = Heap<Deadline>()
    private var nextSequence: UInt64 = 0

    init(pattern: EventPattern<Element>, outOfOrderness: Duration) throws(StreamKitError) {
        bound = try pattern.validated()
        steps = pattern.steps
        clock = BoundedOutOfOrderness(outOfOrderness: try outOfOrderness.eventTimeMilliseconds("outOfOrderness"))
    }

    /// How many partial matches are open, over all keys.
    var partialCount: Int { partials.values.reduce(0) { $0 + $1.count } }
    /// How many elements wait for the watermark.
    var bufferedCount: Int { reorder.count }

    mutating func receive(_ element: Element, key: Key, time: EventTime, into output: inout Deque<Output>) {
        guard time >= clock.watermark else {
            output.append(.late(element))
            return
        }
        nextSequence += 1
        reorder.insert(TimeOrdered(time: time, sequence: nextSequence, key: key, element: element))
        _ = clock.observe(time)
        release(into: &output)
    }

    /// The input ended: every buffered element is processed and every deadline passes.
    mutating func finish(into output: inout Deque<Output>) {
        clock.end()
        release(into: &output)
    }

    private mutating func release(into output: inout Deque<Output>) {
        let watermark = clock.watermark
        while let next = reorder.min, next.time <= watermark {
            reorder.removeMin()
            expire(before: next.time, into: &output)
            process(next, into: &output)
        }
        expire(before: watermark, into: &output)
    }

    private mutating func process(_ next: TimeOrdered<Key, Element>, into output: inout Deque<Output>) {
        var open = partials.removeValue(forKey: next.key) ?? []
        var index = open.startIndex
        while index < open.endIndex {
            let step = steps[open[index].next]
            guard step.predicate(next.element) else {
                index += 1
                continue
            }
            if step.absent {
                open.remove(at: index)
                continue
            }
            open[index].events.append(next.element)
            open[index].next += 1
            if open[index].next == steps.count {
                output.append(.match(PatternMatch(key: next.key, events: open.remove(at: index).events)))
            } else {
                index += 1
            }
        }
        if steps[0].predicate(next.element) {
            if steps.count == 1 {
                output.append(.match(PatternMatch(key: next.key, events: [next.element])))
            } else {
                nextSequence += 1
                open.append(Partial(id: nextSequence, start: next.time, events: [next.element], next: 1))
                deadlines.insert(Deadline(time: next.time + bound, id: nextSequence, key: next.key))
            }
        }
        if !open.isEmpty { partials[next.key] = open }
    }

    /// Ends the partial matches whose bound is before `time`: matched if all that is left is an absent step.
    private mutating func expire(before time: EventTime, into output: inout Deque<Output>) {
        while let deadline = deadlines.min, deadline.time < time {
            deadlines.removeMin()
            guard var open = partials.removeValue(forKey: deadline.key) else { continue }
            if let index = open.firstIndex(where: { $0.id == deadline.id }) {
                let partial = open.remove(at: index)
                if steps[partial.next].absent {
                    output.append(.match(PatternMatch(key: deadline.key, events: partial.events)))
                }
            }
            if !open.isEmpty { partials[deadline.key] = open }
        }
    }
}
