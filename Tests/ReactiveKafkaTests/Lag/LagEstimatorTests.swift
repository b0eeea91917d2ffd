import ReactiveKafka
import Testing

/// The sliding window and its interpolation, on made-up samples: no clock, no cluster.
@Suite struct LagEstimatorTests {
    let t0 = ContinuousClock.now
    func at(_ seconds: Double) -> ContinuousClock.Instant { t0 + .milliseconds(Int64(seconds * 1000)) }

    func window(_ samples: [(Int64, Double)], capacity: Int = 60) -> LagEstimator {
        var estimator = LagEstimator(capacity: capacity)
        for (offset, time) in samples { estimator.record(endOffset: offset, at: at(time)) }
        return estimator
    }

    func seconds(_ estimate: LagEstimator.Estimate) -> Double { estimate.seconds ?? .nan }

    @Test func noSampleOrOneSampleBehindIsUnknown() {
        #expect(LagEstimator().estimate(offset: 0, at: at(1)) == .unknown)
        #expect(window([(100, 0)]).estimate(offset: 50, at: at(5)) == .unknown)
    }

    @Test func atOrPastTheNewestEndIsCaughtUp() {
        let estimator = window([(100, 0), (200, 10)])
        #expect(estimator.estimate(offset: 200, at: at(20)) == .caughtUp)
        #expect(
            estimator.estimate(offset: 250, at: at(20)) == .caughtUp,
            "a commit read after the end offset can be past it")
        #expect(window([(100, 0)]).estimate(offset: 100, at: at(5)) == .caughtUp, "one sample is enough to see no lag")
        #expect(LagEstimator.Estimate.caughtUp.seconds == 0)
    }

    @Test func interpolatesBetweenTheTwoSamplesAroundTheOffset() {
        let estimator = window([(100, 0), (200, 10), (400, 20)])
        // 150 was the end half-way between 0 s and 10 s: at 5 s.
        #expect(estimator.estimate(offset: 150, at: at(20)) == .interpolated(seconds: 15))
        // 300 was the end half-way between 10 s and 20 s.
        #expect(estimator.estimate(offset: 300, at: at(20)) == .interpolated(seconds: 5))
        // An offset equal to a sample's end: that sample's time.
        #expect(estimator.estimate(offset: 200, at: at(20)) == .interpolated(seconds: 10))
        #expect(estimator.estimate(offset: 100, at: at(20)) == .interpolated(seconds: 20))
    }

    @Test func theLagGrowsWithTimeWhileTheOffsetStays() {
        let estimator = window([(100, 0), (200, 10)])
        #expect(seconds(estimator.estimate(offset: 150, at: at(10))) == 5)
        #expect(seconds(estimator.estimate(offset: 150, at: at(11))) == 6)
        #expect(seconds(estimator.estimate(offset: 150, at: at(30))) == 25)
    }

    @Test func aFlatStretchIsTheLatestTimeTheOffsetWasTheEnd() {
        // The end stayed at 100 from 0 s to 30 s, then rose: a consumer at 100 is 30 s behind the moment it rose from.
        let estimator = window([(100, 0), (100, 10), (100, 30), (200, 40)])
        #expect(estimator.estimate(offset: 100, at: at(40)) == .interpolated(seconds: 10))
    }

    @Test func extrapolatesFromTheWholeWindowWhenTheOffsetIsOlder() {
        // 10 records a second over the window: 50 was the end 25 s before the newest sample.
        let estimator = window([(100, 0), (200, 10), (300, 20)])
        #expect(estimator.estimate(offset: 50, at: at(20)) == .extrapolated(seconds: 25))
        #expect(estimator.estimate(offset: 50, at: at(22)) == .extrapolated(seconds: 27))
        // The line through the oldest and newest samples, not the last segment's rate.
        let uneven = window([(1000, 0), (1100, 10), (3000, 20)])
        #expect(uneven.estimate(offset: 500, at: at(20)) == .extrapolated(seconds: 25))
    }

    @Test func aWindowWithoutProductionGivesALowerBound() {
        // The end never moved while watched: offset 50 was written before the first sample.
        let estimator = window([(100, 0), (100, 10)])
        #expect(estimator.estimate(offset: 50, at: at(10)) == .atLeast(seconds: 10))
        #expect(estimator.estimate(offset: 50, at: at(15)) == .atLeast(seconds: 15))
    }

    @Test func theOldestSampleIsDroppedBeyondCapacity() {
        let estimator = window([(100, 0), (200, 10), (300, 20), (400, 30)], capacity: 3)
        #expect(estimator.samples.map(\.endOffset) == [200, 300, 400])
        // 150 was inside the dropped segment: now older than the window, extrapolated at the window's rate.
        #expect(estimator.estimate(offset: 150, at: at(30)) == .extrapolated(seconds: 25))
    }

    @Test func aFlatLineKeepsOnlyItsTwoEnds() {
        var estimator = window([(100, 0), (100, 1), (100, 2), (100, 3)], capacity: 3)
        #expect(estimator.samples == [.init(endOffset: 100, time: at(0)), .init(endOffset: 100, time: at(3))])
        estimator.record(endOffset: 150, at: at(4))
        estimator.record(endOffset: 150, at: at(5))
        #expect(estimator.samples.map(\.endOffset) == [100, 150, 150], "a new flat stretch starts with two samples")
        estimator.record(endOffset: 150, at: at(6))
        #expect(
            estimator.samples == [
                .init(endOffset: 100, time: at(3)), .init(endOffset: 150, time: at(4)),
                .init(endOffset: 150, time: at(6)),
            ])
    }

    @Test func samplesOutOfOrderAreIgnored() {
        var estimator = window([(100, 0), (200, 10)])
        estimator.record(endOffset: 300, at: at(10))
        estimator.record(endOffset: 300, at: at(5))
        #expect(estimator.samples.map(\.endOffset) == [100, 200])
    }

    @Test func anEndOffsetGoingBackwardsStartsAFreshWindow() {
        // The topic was deleted and recreated: its old history says nothing about the new one.
        var estimator = window([(100, 0), (200, 10)])
        estimator.record(endOffset: 5, at: at(20))
        #expect(estimator.samples == [.init(endOffset: 5, time: at(20))])
        #expect(estimator.estimate(offset: 0, at: at(21)) == .unknown)
    }

    @Test func theLagIsNeverNegative() {
        let estimator = window([(100, 0), (200, 10)])
        // Asked at a time before the newest sample (a clock read before the sampling).
        #expect(seconds(estimator.estimate(offset: 199, at: at(0))) == 0)
        #expect(seconds(estimator.estimate(offset: 100, at: at(0))) == 0)
    }

    @Test func theWindowKeepsAtLeastTwoSamples() {
        #expect(LagEstimator(capacity: 0).capacity == 2)
        #expect(window([(1, 0), (2, 1), (3, 2)], capacity: 1).samples.count == 2)
    }
}
