/// A point in event time: milliseconds since the Unix epoch, the unit of Kafka
/// record timestamps.
///
/// Event time is when something happened, as the element says, as opposed to
/// when the stream sees it. The event-time operators
/// (``_Concurrency/AsyncSequence/windowed(_:key:time:outOfOrderness:allowedLateness:earlyUpdates:aggregate:)``,
/// `joined`, `matching`, ``eventTimeMerge(_:time:bufferSize:idleTimeout:clock:)``) read it
/// from each element through an extractor closure. Arithmetic saturates at
/// ``min`` and ``max`` instead of overflowing.
public struct EventTime: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Milliseconds since the Unix epoch.
    public var milliseconds: Int64

    /// The instant `milliseconds` after the epoch.
    @inlinable public init(milliseconds: Int64) { self.milliseconds = milliseconds }

    /// Earlier than every element: the watermark before any element was seen.
    public static let min = EventTime(milliseconds: .min)
    /// Later than every element: the watermark once the stream has ended.
    public static let max = EventTime(milliseconds: .max)

    /// Whether the left value orders before the right one.
    @inlinable public static func < (lhs: EventTime, rhs: EventTime) -> Bool { lhs.milliseconds < rhs.milliseconds }

    /// `lhs` moved by `rhs` milliseconds, saturating.
    @inlinable static func + (lhs: EventTime, rhs: Int64) -> EventTime {
        let (sum, overflow) = lhs.milliseconds.addingReportingOverflow(rhs)
        return overflow ? (rhs > 0 ? .max : .min) : EventTime(milliseconds: sum)
    }

    /// `lhs` moved back by `rhs` milliseconds, saturating.
    @inlinable static func - (lhs: EventTime, rhs: Int64) -> EventTime {
        let (difference, overflow) = lhs.milliseconds.subtractingReportingOverflow(rhs)
        return overflow ? (rhs > 0 ? .min : .max) : EventTime(milliseconds: difference)
    }

    /// A rendering for logs and error messages.
    public var description: String { "\(milliseconds)ms" }
}

extension Duration {
    /// This duration in whole milliseconds, or an ``StreamKitError/invalidArgument(_:)`` naming
    /// `parameter` when it is negative, below `minimum` or not a whole number of milliseconds
    /// (event time counts milliseconds, as Kafka timestamps do).
    func eventTimeMilliseconds(_ parameter: String, minimum: Int64 = 0) throws(StreamKitError) -> Int64 {
        let (seconds, attoseconds) = components
        let perMillisecond: Int64 = 1_000_000_000_000_000
        let (milliseconds, overflow) = seconds.multipliedReportingOverflow(by: 1_000)
        try requireArgument(
            !overflow && attoseconds % perMillisecond == 0 && milliseconds + attoseconds / perMillisecond >= minimum,
            "\(parameter): \(self) must be a whole number of milliseconds, at least \(minimum) ms"
        )
        return milliseconds + attoseconds / perMillisecond
    }
}

/// The watermark of a stream whose elements arrive at most `outOfOrderness`
/// behind the latest event time seen: no element earlier than the watermark is
/// expected any more.
@usableFromInline struct BoundedOutOfOrderness: Sendable {
    @usableFromInline let outOfOrderness: Int64
    /// The latest event time seen so far.
    @usableFromInline var maxSeen = EventTime.min
    /// Set once the input has ended: every event time has passed.
    @usableFromInline var ended = false

    @inlinable init(outOfOrderness: Int64) { self.outOfOrderness = outOfOrderness }

    /// Elements before this time are late.
    @inlinable var watermark: EventTime { ended ? .max : (maxSeen == .min ? .min : maxSeen - outOfOrderness) }

    /// Takes `time` into account; returns whether the watermark moved.
    @inlinable mutating func observe(_ time: EventTime) -> Bool {
        guard time > maxSeen else { return false }
        maxSeen = time
        return true
    }

    /// The input ended: the watermark jumps to ``EventTime/max``.
    @inlinable mutating func end() { ended = true }
}
