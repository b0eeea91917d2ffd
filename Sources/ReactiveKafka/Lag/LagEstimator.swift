import DequeModule

/// How far behind in time a consumer is on one partition, estimated from a sliding window
/// of the partition's end offset sampled over time (Kafka Lag Exporter's method).
///
/// Each sample says "at this time the partition ended at this offset". A consumer whose
/// committed offset is `c` has read everything that existed when the partition ended at `c`,
/// so its lag in time is how long ago that was: the time is interpolated between the two
/// samples around `c`, or, when `c` is older than the whole window, extrapolated from the
/// window's overall production rate. No record is read; the estimate is as good as the
/// production rate is steady between samples (see ``Estimate``).
///
/// A pure value: no clock, no I/O. ``record(endOffset:at:)`` adds a sample;
/// ``estimate(offset:at:)`` answers for an offset at a given time.
public struct LagEstimator: Sendable {
    /// The partition's end offset (the next offset to be written) at a point in time.
    public struct Sample: Sendable, Hashable {
        /// The end offset (high watermark).
        public let endOffset: Int64
        /// When it was read.
        public let time: ContinuousClock.Instant

        /// A sample of `endOffset` read at `time`.
        public init(endOffset: Int64, time: ContinuousClock.Instant) {
            self.endOffset = endOffset
            self.time = time
        }
    }

    /// An estimate of a consumer's lag in time.
    public enum Estimate: Sendable, Equatable {
        /// The offset is at (or past) the newest end offset: no lag.
        case caughtUp
        /// The offset lies within the window: the lag, interpolated between the two samples around it.
        case interpolated(seconds: Double)
        /// The offset is older than the window: the lag, extrapolated from the window's production rate.
        case extrapolated(seconds: Double)
        /// The offset is older than the window and the window saw no production: the record
        /// was written before the oldest sample, so the lag is at least this (a lower bound).
        case atLeast(seconds: Double)
        /// Fewer than two samples, or none: no estimate yet.
        case unknown

        /// The lag in seconds; `nil` when ``unknown``.
        public var seconds: Double? {
            switch self {
            case .caughtUp: 0
            case .interpolated(let seconds), .extrapolated(let seconds), .atLeast(let seconds): seconds
            case .unknown: nil
            }
        }
    }

    /// The most samples kept; the oldest is dropped beyond it.
    public let capacity: Int
    /// The window, oldest first; end offsets never decrease and times strictly increase.
    public private(set) var samples: Deque<Sample> = []

    /// An empty window of `capacity` samples (at least 2: smaller values are raised to 2,
    /// as interpolation needs two).
    public init(capacity: Int = 60) {
        self.capacity = max(2, capacity)
    }

    /// Adds the partition's end offset read at `time`.
    ///
    /// A sample no later than the newest is ignored (out of order). An end offset below the
    /// newest means the partition was deleted and recreated: the window starts again from
    /// this sample. While the end offset does not move, the newest sample is moved forward
    /// instead of adding one (a flat line needs only its two ends), so an idle partition does
    /// not push its history out of the window.
    public mutating func record(endOffset: Int64, at time: ContinuousClock.Instant) {
        let sample = Sample(endOffset: endOffset, time: time)
        if let newest = samples.last {
            if time <= newest.time { return }
            if endOffset < newest.endOffset {
                samples = [sample]
                return
            }
            if endOffset == newest.endOffset, samples.count >= 2, samples[samples.count - 2].endOffset == endOffset {
                samples[samples.count - 1] = sample
                return
            }
        }
        samples.append(sample)
        if samples.count > capacity { samples.removeFirst() }
    }

    /// The lag, at `now`, of a consumer whose committed offset is `offset`: how long ago the
    /// partition ended at `offset`. Never negative.
    public func estimate(offset: Int64, at now: ContinuousClock.Instant) -> Estimate {
        guard let newest = samples.last else { return .unknown }
        if offset >= newest.endOffset { return .caughtUp }
        guard samples.count >= 2, let oldest = samples.first else { return .unknown }
        // The newest pair of neighbours around the offset: the latest time it was the end.
        var index = samples.count - 1
        while index > 0 {
            let left = samples[index - 1]
            let right = samples[index]
            if left.endOffset <= offset, offset <= right.endOffset {
                return .interpolated(seconds: Self.lag(of: offset, on: left, right, at: now))
            }
            index -= 1
        }
        guard newest.endOffset > oldest.endOffset else {
            return .atLeast(seconds: max(0, (now - oldest.time).seconds))
        }
        // Older than the window: continue the line through the oldest and newest samples.
        return .extrapolated(seconds: Self.lag(of: offset, on: oldest, newest, at: now))
    }

    /// The time elapsed at `now` since the line through `left` and `right` reached `offset`.
    private static func lag(of offset: Int64, on left: Sample, _ right: Sample, at now: ContinuousClock.Instant)
        -> Double
    {
        let sinceRight = (now - right.time).seconds
        let rise = Double(right.endOffset - left.endOffset)
        // A flat pair (the offset equals both ends): the offset was the end until `right`.
        guard rise > 0 else { return max(0, sinceRight) }
        let run = (right.time - left.time).seconds
        return max(0, sinceRight + run * Double(right.endOffset - offset) / rise)
    }
}
