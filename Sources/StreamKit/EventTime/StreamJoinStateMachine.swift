import DequeModule
import HeapModule

/// One element of either input of a stream–stream join.
public enum JoinSide<Left, Right> {
    case left(Left)
    case right(Right)
}

extension JoinSide: Sendable where Left: Sendable, Right: Sendable {}
extension JoinSide: Equatable where Left: Equatable, Right: Equatable {}

/// What a stream–stream join emits.
public enum JoinOutput<Left, Right> {
    /// A left and a right element with the same key, at most the join window apart in event time.
    case joined(Left, Right)
    /// An element that arrived behind the watermark, when some of its partners may already have
    /// been dropped; it is in no pair.
    case late(JoinSide<Left, Right>)
}

extension JoinOutput: Sendable where Left: Sendable, Right: Sendable {}
extension JoinOutput: Equatable where Left: Equatable, Right: Equatable {}

/// The pure state of a stream–stream inner join: per key, each side's elements that a future
/// element of the other side could still pair with.
///
/// Elements at event times `l` and `r` pair when `|l - r| <= window`; a pair is emitted when
/// the second of the two arrives. The watermark is the latest time seen on either side minus
/// `outOfOrderness`; an element behind it is late, and an element is dropped once the watermark
/// is more than `window` past it. So each buffer holds at most `window + outOfOrderness` of event
/// time per key.
struct StreamJoinStateMachine<Key: Hashable, Left, Right> {
    typealias Output = JoinOutput<Left, Right>

    struct Buffered<Value> {
        var sequence: UInt64
        var time: EventTime
        var value: Value
    }

    struct Expiry: Comparable {
        var time: EventTime
        var sequence: UInt64
        var key: Key
        var left: Bool
        static func == (lhs: Self, rhs: Self) -> Bool { lhs.sequence == rhs.sequence }
        static func < (lhs: Self, rhs: Self) -> Bool { (lhs.time, lhs.sequence) < (rhs.time, rhs.sequence) }
    }

    let window: Int64
    private(set) var clock: BoundedOutOfOrderness
    private(set) var lefts: [Key: [Buffered<Left>]] = [:]
    private(set) var rights: [Key: [Buffered<Right>]] = [:]
    private var expiries = Heap<Expiry>()
    private var nextSequence: UInt64 = 0

    init(window: Duration, outOfOrderness: Duration) throws(StreamKitError) {
        self.window = try window.eventTimeMilliseconds("join window")
        clock = BoundedOutOfOrderness(outOfOrderness: try outOfOrderness.eventTimeMilliseconds("outOfOrderness"))
    }

    /// How many elements both buffers hold.
    var bufferedCount: Int { expiries.count }

    mutating func receive(_ side: JoinSide<Left, Right>, key: Key, time: EventTime, into output: inout Deque<Output>) {
        guard time >= clock.watermark else {
            output.append(.late(side))
            return
        }
        nextSequence += 1
        switch side {
        case .left(let left):
            for right in rights[key] ?? [] where within(time, right.time) { output.append(.joined(left, right.value)) }
            lefts[key, default: []].append(Buffered(sequence: nextSequence, time: time, value: left))
            expiries.insert(Expiry(time: time, sequence: nextSequence, key: key, left: true))
        case .right(let right):
            for left in lefts[key] ?? [] where within(left.time, time) { output.append(.joined(left.value, right)) }
            rights[key, default: []].append(Buffered(sequence: nextSequence, time: time, value: right))
            expiries.insert(Expiry(time: time, sequence: nextSequence, key: key, left: false))
        }
        if clock.observe(time) { evict() }
    }

    private func within(_ left: EventTime, _ right: EventTime) -> Bool {
        left <= right ? right <= left + window : left <= right + window
    }

    /// Drops the elements no element at or after the watermark can pair with.
    private mutating func evict() {
        let watermark = clock.watermark
        while let expiry = expiries.min, expiry.time + window < watermark {
            expiries.removeMin()
            if expiry.left {
                lefts[expiry.key]?.removeAll { $0.sequence == expiry.sequence }
                if lefts[expiry.key]?.isEmpty == true { lefts[expiry.key] = nil }
            } else {
                rights[expiry.key]?.removeAll { $0.sequence == expiry.sequence }
                if rights[expiry.key]?.isEmpty == true { rights[expiry.key] = nil }
            }
        }
    }
}
