import Testing

@testable import ReactiveKafka
@testable import rkafka

/// The lag `rkafka consume` and `rkafka demo` print, from a consumer's statistics.
@Suite struct ProgressLagTests {
    let t0 = ContinuousClock.now

    /// Statistics of one partition of `orders` as librdkafka writes them.
    func metrics(end: Int64, position: Int64, committed: Int64 = -1001, fetching: Bool = true) -> ConsumerMetrics {
        let json = """
            {"rxmsgs": 1, "topics": {"orders": {"partitions": {
              "0": {"fetch_state": "\(fetching ? "active" : "none")", "hi_offset": \(end), "app_offset": \(position),
                    "committed_offset": \(committed), "consumer_lag": \(end - position)},
              "-1": {"fetch_state": "none", "hi_offset": -1, "app_offset": -1001, "committed_offset": -1001, "consumer_lag": -1}
            }}}}
            """
        return ConsumerMetrics(statisticsJSON: json, bufferedBytes: 0, bufferedBytesHighWater: 0)
    }

    @Test func recordsAtOnceAndSecondsOnceTheWindowCanTell() {
        var lag = ProgressLag()
        #expect(lag.update(metrics(end: 100, position: 60), at: t0) == .init(records: 40, seconds: nil))
        #expect(
            lag.update(metrics(end: 100, position: 60), at: t0 + .seconds(2)) == .init(records: 40, seconds: 2),
            "at least since the first sample")
        // The end moves on from 100 at 2 s; the consumer reaches 100: behind by the time 100 stopped being the end.
        #expect(lag.update(metrics(end: 140, position: 100), at: t0 + .seconds(3)) == .init(records: 40, seconds: 1))
        #expect(lag.update(metrics(end: 140, position: 140), at: t0 + .seconds(4)) == .init(records: 0, seconds: 0))
        #expect(ProgressLag.Lag(records: 40, seconds: 1.5).text == "lag 40 records, 1.5 s")
        #expect(ProgressLag.Lag(records: 40, seconds: nil).text == "lag 40 records, - s (estimating)")
    }

    @Test func theCommittedOffsetCountsWhereThereIsOne() {
        var lag = ProgressLag()
        // librdkafka handed out up to 45 (buffered ahead of the stream); the group committed 20.
        #expect(lag.update(metrics(end: 50, position: 45, committed: 20), at: t0)?.records == 30)
    }

    @Test func nothingToShowWhileJoining() {
        var lag = ProgressLag()
        #expect(
            lag.update(ConsumerMetrics(statisticsJSON: nil, bufferedBytes: 0, bufferedBytesHighWater: 0), at: t0) == nil
        )
        #expect(
            lag.update(metrics(end: 50, position: 10, fetching: false), at: t0) == nil,
            "partitions not fetched are not this consumer's")
        #expect(lag.update(metrics(end: 50, position: -1001), at: t0) == nil, "no position and no commit yet")
    }
}
