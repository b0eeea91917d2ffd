import DequeModule
import Testing

@testable import StreamKit

/// An element with a key and an event time in milliseconds.
struct Event: Sendable, Equatable, CustomStringConvertible {
    var key: String
    var ms: Int64
    var amount = 1
    var time: EventTime { EventTime(milliseconds: ms) }
    var description: String { "\(key)@\(ms)" }
}

func ev(_ key: String, _ ms: Int64, amount: Int = 1) -> Event { Event(key: key, ms: ms, amount: amount) }

func window(_ start: Int64, _ end: Int64) -> EventTimeWindow {
    EventTimeWindow(start: EventTime(milliseconds: start), end: EventTime(milliseconds: end))
}

typealias Machine = WindowingStateMachine<String, Event, Int>

func machine(
    _ windows: EventTimeWindows, outOfOrderness: Duration = .zero, lateness: Duration = .zero, early: Bool = false,
    aggregate: WindowAggregation<Event, Int> = .count
) throws -> Machine {
    try Machine(
        windows: windows, outOfOrderness: outOfOrderness, allowedLateness: lateness, earlyUpdates: early,
        aggregation: aggregate)
}

/// Feeds `events` (then, with `finish`, the end) and returns what came out after each step.
func run(_ machine: inout Machine, _ events: [Event], finish: Bool = false) -> [Windowed<String, Int, Event>] {
    var output: Deque<Windowed<String, Int, Event>> = []
    for event in events { machine.receive(event, key: event.key, time: event.time, into: &output) }
    if finish { machine.finish(into: &output) }
    return Array(output)
}

func final(_ key: String, _ start: Int64, _ end: Int64, _ value: Int) -> Windowed<String, Int, Event> {
    .window(WindowResult(key: key, window: window(start, end), value: value, isFinal: true))
}

func early(_ key: String, _ start: Int64, _ end: Int64, _ value: Int) -> Windowed<String, Int, Event> {
    .window(WindowResult(key: key, window: window(start, end), value: value, isFinal: false))
}

@Suite struct TumblingWindowTests {
    @Test func aWindowClosesWhenTheWatermarkReachesItsEnd() throws {
        var m = try machine(.tumbling(.seconds(1)))
        #expect(run(&m, [ev("a", 0), ev("a", 500), ev("a", 999)]).isEmpty)
        #expect(run(&m, [ev("a", 1000)]) == [final("a", 0, 1000, 3)])
        #expect(run(&m, [ev("a", 2100)]) == [final("a", 1000, 2000, 1)])
        #expect(m.openWindowCount == 1)
    }

    @Test func outOfOrderElementsWithinTheBoundCountAndLaterOnesGoToTheSideOutput() throws {
        var m = try machine(.tumbling(.seconds(1)), outOfOrderness: .milliseconds(300))
        // 1200 moves the watermark to 900 only: [0, 1000) stays open for 950.
        #expect(run(&m, [ev("a", 100), ev("a", 1200), ev("a", 950)]).isEmpty)
        // 1300 moves it to 1000: [0, 1000) closes with 100 and 950.
        #expect(run(&m, [ev("a", 1300)]) == [final("a", 0, 1000, 2)])
        // 990 is now behind a closed window: late, in no result.
        #expect(run(&m, [ev("a", 990)]) == [.late(ev("a", 990))])
        #expect(run(&m, [], finish: true) == [final("a", 1000, 2000, 2)])
    }

    @Test func allowedLatenessKeepsAWindowOpenPastItsEnd() throws {
        var m = try machine(.tumbling(.seconds(1)), lateness: .milliseconds(500))
        // 20 is behind the watermark, within the lateness.
        #expect(run(&m, [ev("a", 10), ev("a", 1200), ev("a", 20)]).isEmpty)
        #expect(run(&m, [ev("a", 1499)]).isEmpty)
        #expect(run(&m, [ev("a", 1500)]) == [final("a", 0, 1000, 2)])
        #expect(run(&m, [ev("a", 30)]) == [.late(ev("a", 30))])
    }

    @Test func keysHaveTheirOwnWindowsAndCloseInOrderOfEnd() throws {
        var m = try machine(.tumbling(.seconds(1)), outOfOrderness: .seconds(2))
        #expect(run(&m, [ev("b", 1500), ev("a", 100), ev("b", 200), ev("a", 2100)]).isEmpty)
        // Equal ends close in the order their windows opened.
        #expect(
            run(&m, [ev("c", 4100)]) == [final("a", 0, 1000, 1), final("b", 0, 1000, 1), final("b", 1000, 2000, 1)])
        #expect(run(&m, [], finish: true) == [final("a", 2000, 3000, 1), final("c", 4000, 5000, 1)])
    }

    @Test func theEndOfTheInputFlushesEveryOpenWindow() throws {
        var m = try machine(.tumbling(.seconds(1)), lateness: .seconds(60))
        #expect(run(&m, [ev("a", 0), ev("b", 5000), ev("a", 9000)]).isEmpty)
        #expect(
            run(&m, [], finish: true) == [
                final("a", 0, 1000, 1), final("b", 5000, 6000, 1), final("a", 9000, 10000, 1),
            ])
        #expect(m.openWindowCount == 0)
        #expect(m.open.isEmpty)
    }

    @Test func earlyUpdatesFollowEachElementAndTheFinalResultComesAtClose() throws {
        var m = try machine(.tumbling(.seconds(1)), early: true, aggregate: .sum(\.amount))
        #expect(
            run(&m, [ev("a", 0, amount: 5), ev("a", 10, amount: 7)]) == [
                early("a", 0, 1000, 5), early("a", 0, 1000, 12),
            ])
        #expect(run(&m, [ev("a", 1000, amount: 1)]) == [early("a", 1000, 2000, 1), final("a", 0, 1000, 12)])
    }

    @Test func negativeEventTimesFallInTheWindowsBeforeTheEpoch() throws {
        var m = try machine(.tumbling(.seconds(1)))
        #expect(run(&m, [ev("a", -1), ev("a", 0)]) == [final("a", -1000, 0, 1)])
    }

    @Test func stateStaysBoundedByTheOpenWindows() throws {
        var m = try machine(.tumbling(.seconds(1)), outOfOrderness: .seconds(1), lateness: .seconds(1))
        var results = 0
        for ms in stride(from: Int64(0), to: 100_000, by: 10) {
            for key in ["a", "b", "c"] {
                results += run(&m, [ev(key, ms)]).count
                // Open: the windows whose end + 1 s lateness is after watermark = latest - 1 s: at most 4 per key.
                #expect(m.openWindowCount <= 3 * 4)
            }
        }
        results += run(&m, [], finish: true).count
        #expect(results == 3 * 100)
    }
}

@Suite struct HoppingWindowTests {
    @Test func anElementBelongsToEveryOverlappingWindow() throws {
        var m = try machine(.hopping(size: .seconds(10), advance: .seconds(5)))
        #expect(run(&m, [ev("a", 7000), ev("a", 12000)]) == [final("a", 0, 10000, 1)])
        #expect(run(&m, [], finish: true) == [final("a", 5000, 15000, 2), final("a", 10000, 20000, 1)])
    }

    @Test func earlyUpdatesComeForEachWindowOldestFirst() throws {
        var m = try machine(.hopping(size: .seconds(3), advance: .seconds(1)), early: true)
        #expect(
            run(&m, [ev("a", 2500)]) == [early("a", 0, 3000, 1), early("a", 1000, 4000, 1), early("a", 2000, 5000, 1)])
    }

    @Test func anElementLateForSomeWindowsOnlyCountsInTheOpenOnes() throws {
        var m = try machine(.hopping(size: .seconds(10), advance: .seconds(5)), outOfOrderness: .seconds(3))
        // The watermark is 10,000: [0, 10000) has closed, [5000, 15000) is open.
        #expect(run(&m, [ev("a", 6000), ev("a", 13000)]) == [final("a", 0, 10000, 1)])
        #expect(run(&m, [ev("a", 9000)]).isEmpty)
        #expect(run(&m, [], finish: true) == [final("a", 5000, 15000, 3), final("a", 10000, 20000, 1)])
        // Behind every window it belongs to: late.
        var n = try machine(.hopping(size: .seconds(10), advance: .seconds(5)))
        #expect(run(&n, [ev("a", 20000), ev("a", 9000)]).contains(.late(ev("a", 9000))))
    }
}

@Suite struct SessionWindowTests {
    @Test func aGapSplitsSessions() throws {
        var m = try machine(.session(gap: .seconds(1)))
        #expect(run(&m, [ev("a", 0), ev("a", 600), ev("a", 1500)]).isEmpty)
        // 1500 was less than a gap after 600: one session [0, 2500) until an element 1 s later.
        #expect(run(&m, [ev("a", 2500)]) == [final("a", 0, 2500, 3)])
        #expect(run(&m, [], finish: true) == [final("a", 2500, 3500, 1)])
    }

    @Test func anElementBridgingTwoSessionsMergesThem() throws {
        var m = try machine(.session(gap: .seconds(1)), outOfOrderness: .seconds(5), early: true)
        #expect(run(&m, [ev("a", 0), ev("a", 1800)]) == [early("a", 0, 1000, 1), early("a", 1800, 2800, 1)])
        #expect(m.openWindowCount == 2)
        #expect(run(&m, [ev("a", 900)]) == [early("a", 0, 2800, 3)])
        #expect(m.openWindowCount == 1)
        #expect(run(&m, [], finish: true) == [final("a", 0, 2800, 3)])
    }

    @Test func sessionsArePerKey() throws {
        var m = try machine(.session(gap: .seconds(1)), aggregate: .sum(\.amount))
        _ = run(&m, [ev("a", 0, amount: 1), ev("b", 500, amount: 10), ev("a", 900, amount: 2)])
        #expect(run(&m, [ev("c", 1900)]) == [final("b", 500, 1500, 10), final("a", 0, 1900, 3)])
        #expect(run(&m, [], finish: true) == [final("c", 1900, 2900, 1)])
    }

    @Test func aLateElementThatStartsNoOpenSessionGoesToTheSideOutput() throws {
        var m = try machine(.session(gap: .seconds(1)), lateness: .milliseconds(200))
        _ = run(&m, [ev("a", 5000)])
        // [3900, 4900) does not reach [5000, 6000), but closes at 5100, after the watermark: a session of its own.
        #expect(run(&m, [ev("a", 3900)]).isEmpty)
        // [2000, 3000) would close at 3200, before the watermark, and joins no open session.
        #expect(run(&m, [ev("a", 2000)]) == [.late(ev("a", 2000))])
        #expect(run(&m, [], finish: true) == [final("a", 3900, 4900, 1), final("a", 5000, 6000, 1)])
    }
}

@Suite struct WindowArgumentTests {
    @Test(arguments: [
        EventTimeWindows.tumbling(.zero), .tumbling(.microseconds(1500)),
        .hopping(size: .seconds(1), advance: .seconds(2)),
        .hopping(size: .seconds(1), advance: .zero), .session(gap: .seconds(-1)),
    ])
    func invalidWindowsAreATypedError(_ windows: EventTimeWindows) {
        #expect(throws: StreamKitError.self) { try machine(windows) }
    }

    @Test func sessionsNeedAMergeableAggregation() {
        let noMerge = WindowAggregation<Event, Int>(initial: { 0 }, add: { $0 += $1.amount })
        #expect(
            throws: StreamKitError.invalidArgument(
                "session windows need a WindowAggregation with merge: (two sessions an element bridges become one)")
        ) {
            try machine(.session(gap: .seconds(1)), aggregate: noMerge)
        }
    }

    @Test func aNegativeLatenessIsATypedError() {
        #expect(throws: StreamKitError.self) { try machine(.tumbling(.seconds(1)), lateness: .seconds(-1)) }
        #expect(throws: StreamKitError.self) { try machine(.tumbling(.seconds(1)), outOfOrderness: .milliseconds(-1)) }
    }
}

@Suite(.timeLimit(.minutes(1))) struct WindowedSequenceTests {
    @Test func windowsAStreamAndSeparatesLateElements() async throws {
        let events = [
            ev("a", 0, amount: 2), ev("b", 300, amount: 5), ev("a", 1200, amount: 1), ev("a", 100, amount: 9),
            ev("b", 2500, amount: 1),
        ]
        let outputs = try await events.async.windowed(
            .tumbling(.seconds(1)), key: \.key, time: \.time, aggregate: .sum(\.amount)
        ).collect()
        #expect(
            outputs == [
                final("a", 0, 1000, 2), final("b", 0, 1000, 5), .late(ev("a", 100, amount: 9)),
                final("a", 1000, 2000, 1), final("b", 2000, 3000, 1),
            ])
    }

    @Test func invalidArgumentsFailTheFirstNext() async throws {
        let sequence = [ev("a", 0)].async.windowed(.tumbling(.zero), key: \.key, time: \.time, aggregate: .count)
        await #expect(throws: StreamKitError.self) { try await sequence.collect() }
    }

    @Test func anUpstreamErrorComesAfterTheResultsBeforeIt() async throws {
        let failing = AsyncThrowingStream<Event, any Error> { continuation in
            continuation.yield(ev("a", 0))
            continuation.yield(ev("a", 1000))
            continuation.finish(throwing: TestError())
        }
        var iterator = failing.windowed(.tumbling(.seconds(1)), key: \.key, time: \.time, aggregate: .count)
            .makeAsyncIterator()
        #expect(try await iterator.next() == final("a", 0, 1000, 1))
        await #expect(throws: TestError.self) { try await iterator.next() }
        #expect(try await iterator.next() == nil)
    }
}
