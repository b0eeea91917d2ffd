/// How ``_Concurrency/AsyncSequence/windowed(_:key:time:outOfOrderness:allowedLateness:earlyUpdates:aggregate:)``
/// groups elements by event time. Sizes are whole milliseconds (event time's unit).
public struct EventTimeWindows: Sendable, Hashable {
    @usableFromInline enum Kind: Sendable, Hashable {
        case hopping(size: Duration, advance: Duration)
        case session(gap: Duration)
    }

    @usableFromInline let kind: Kind

    /// Fixed, non-overlapping windows of `size`, aligned to the epoch: `[0, size)`, `[size, 2·size)`, …
    public static func tumbling(_ size: Duration) -> EventTimeWindows {
        EventTimeWindows(kind: .hopping(size: size, advance: size))
    }

    /// Windows of `size` starting every `advance` (at most `size`), aligned to the epoch: an
    /// element belongs to `size / advance` windows.
    public static func hopping(size: Duration, advance: Duration) -> EventTimeWindows {
        EventTimeWindows(kind: .hopping(size: size, advance: advance))
    }

    /// Per-key bursts of activity: a window is extended by each element until no element comes
    /// for `gap`; two sessions that an element bridges merge (the aggregation must be mergeable).
    public static func session(gap: Duration) -> EventTimeWindows {
        EventTimeWindows(kind: .session(gap: gap))
    }
}

/// An event-time interval `[start, end)`.
public struct EventTimeWindow: Sendable, Hashable, CustomStringConvertible {
    /// The first instant in the window.
    public var start: EventTime
    /// The first instant after it.
    public var end: EventTime

    /// The window `[start, end)`.
    @inlinable public init(start: EventTime, end: EventTime) {
        self.start = start
        self.end = end
    }

    /// A rendering for logs and error messages.
    public var description: String { "[\(start.milliseconds), \(end.milliseconds))" }
}

/// One window's aggregate for one key.
public struct WindowResult<Key, Value> {
    /// The key the elements shared.
    public var key: Key
    /// The window's interval.
    public var window: EventTimeWindow
    /// The aggregate of the window's elements so far.
    public var value: Value
    /// `true` for the result emitted when the window closed (once per window); `false` for an
    /// early update (with `earlyUpdates: true`, after each element the window took).
    public var isFinal: Bool

    /// A result; the operator creates these, tests may too.
    @inlinable public init(key: Key, window: EventTimeWindow, value: Value, isFinal: Bool) {
        self.key = key
        self.window = window
        self.value = value
        self.isFinal = isFinal
    }
}

extension WindowResult: Sendable where Key: Sendable, Value: Sendable {}
extension WindowResult: Equatable where Key: Equatable, Value: Equatable {}

/// What a windowed stream emits: window results, and the elements that came too late for
/// every window they belonged to (the side output).
public enum Windowed<Key, Value, Element> {
    /// A window's aggregate: final when the window closed, or an early update.
    case window(WindowResult<Key, Value>)
    /// An element whose windows had all closed (later than the watermark allowed, even with
    /// the allowed lateness); it is in no result.
    case late(Element)

    /// The window result, if this is one.
    public var result: WindowResult<Key, Value>? {
        if case .window(let result) = self { result } else { nil }
    }

    /// The late element, if this is one.
    public var lateElement: Element? {
        if case .late(let element) = self { element } else { nil }
    }
}

extension Windowed: Sendable where Key: Sendable, Value: Sendable, Element: Sendable {}
extension Windowed: Equatable where Key: Equatable, Value: Equatable, Element: Equatable {}

/// How a window folds its elements into a value: count, sum or any fold. Session windows also
/// need `merge` (two sessions an element bridges become one).
public struct WindowAggregation<Element, Value>: Sendable {
    @usableFromInline let initial: @Sendable () -> Value
    @usableFromInline let add: @Sendable (inout Value, Element) -> Void
    @usableFromInline let merge: (@Sendable (inout Value, Value) -> Void)?

    /// A fold: each window starts from `initial()` and takes its elements through `add`;
    /// `merge` combines two windows' values (needed by session windows only).
    public init(
        initial: @escaping @Sendable () -> Value,
        add: @escaping @Sendable (inout Value, Element) -> Void,
        merge: (@Sendable (inout Value, Value) -> Void)? = nil
    ) {
        self.initial = initial
        self.add = add
        self.merge = merge
    }

    /// Sums `value(element)` over the window.
    public static func sum(_ value: @escaping @Sendable (Element) -> Value) -> WindowAggregation
    where Value: AdditiveArithmetic & Sendable {
        WindowAggregation(initial: { .zero }, add: { $0 += value($1) }, merge: { $0 += $1 })
    }
}

extension WindowAggregation where Value == Int {
    /// Counts the window's elements.
    public static var count: WindowAggregation {
        WindowAggregation(initial: { 0 }, add: { sum, _ in sum += 1 }, merge: { $0 += $1 })
    }
}
