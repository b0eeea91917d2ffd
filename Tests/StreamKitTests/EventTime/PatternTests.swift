import DequeModule
import Testing

@testable import StreamKit

/// An activity of kind "A", "B", "C", … by `key` at `ms`.
struct Act: Sendable, Equatable, CustomStringConvertible {
    var key: String
    var ms: Int64
    var kind: String
    var time: EventTime { EventTime(milliseconds: ms) }
    var description: String { "\(kind)(\(key)@\(ms))" }
}

func act(_ kind: String, _ key: String, _ ms: Int64) -> Act { Act(key: key, ms: ms, kind: kind) }

extension EventPattern where Element == Act {
    static func kinds(_ first: String, _ rest: [(String, absent: Bool)], within: Duration) -> EventPattern {
        var pattern = EventPattern.first(first) { $0.kind == first }
        for (kind, absent) in rest {
            pattern =
                absent ? pattern.notFollowedBy(kind) { $0.kind == kind } : pattern.followedBy(kind) { $0.kind == kind }
        }
        return pattern.within(within)
    }
}

typealias PatternMachine = PatternStateMachine<String, Act>

func feed(_ machine: inout PatternMachine, _ acts: [Act], finish: Bool = false) -> [PatternOutput<String, Act>] {
    var output: Deque<PatternOutput<String, Act>> = []
    for act in acts { machine.receive(act, key: act.key, time: act.time, into: &output) }
    if finish { machine.finish(into: &output) }
    return Array(output)
}

func match(_ key: String, _ events: Act...) -> PatternOutput<String, Act> {
    .match(PatternMatch(key: key, events: events))
}

@Suite struct PatternStateMachineTests {
    let aThenB = EventPattern<Act>.kinds("A", [("B", false)], within: .seconds(10))

    @Test func aFollowedByBWithinTheBoundMatchesWithEventsBetween() throws {
        var m = try PatternMachine(pattern: aThenB, outOfOrderness: .zero)
        #expect(feed(&m, [act("A", "k", 0), act("C", "k", 1000)]).isEmpty)
        #expect(feed(&m, [act("B", "k", 10_000)]) == [match("k", act("A", "k", 0), act("B", "k", 10_000))])
        #expect(m.partialCount == 0)
    }

    @Test func bAfterTheBoundDoesNotMatch() throws {
        var m = try PatternMachine(pattern: aThenB, outOfOrderness: .zero)
        #expect(feed(&m, [act("A", "k", 0), act("B", "k", 10_001)], finish: true).isEmpty)
        #expect(m.partialCount == 0)
    }

    @Test func matchesArePerKey() throws {
        var m = try PatternMachine(pattern: aThenB, outOfOrderness: .zero)
        #expect(
            feed(&m, [act("A", "x", 0), act("B", "y", 100), act("A", "y", 200), act("B", "x", 300)])
                == [match("x", act("A", "x", 0), act("B", "x", 300))])
    }

    @Test func eachAStartsItsOwnMatch() throws {
        var m = try PatternMachine(pattern: aThenB, outOfOrderness: .zero)
        #expect(
            feed(&m, [act("A", "k", 0), act("A", "k", 5), act("B", "k", 9)]) == [
                match("k", act("A", "k", 0), act("B", "k", 9)), match("k", act("A", "k", 5), act("B", "k", 9)),
            ])
    }

    @Test func aSequenceOfSeveralStepsMatchesInOrderOnly() throws {
        let abc = EventPattern<Act>.kinds("A", [("B", false), ("C", false)], within: .seconds(1))
        var m = try PatternMachine(pattern: abc, outOfOrderness: .zero)
        #expect(feed(&m, [act("A", "k", 0), act("C", "k", 10), act("B", "k", 20)]).isEmpty)
        #expect(feed(&m, [act("C", "k", 30)]) == [match("k", act("A", "k", 0), act("B", "k", 20), act("C", "k", 30))])
    }

    @Test func outOfOrderElementsAreProcessedInEventTimeOrder() throws {
        var m = try PatternMachine(pattern: aThenB, outOfOrderness: .seconds(2))
        // B arrives before A but happened after it.
        #expect(feed(&m, [act("B", "k", 1500), act("A", "k", 1000)]).isEmpty)
        #expect(m.bufferedCount == 2)
        #expect(feed(&m, [act("C", "k", 3500)]) == [match("k", act("A", "k", 1000), act("B", "k", 1500))])
        // Behind the watermark (1500): late, in no match.
        #expect(feed(&m, [act("A", "k", 1400)]) == [.late(act("A", "k", 1400))])
    }

    @Test func absenceMatchesWhenTheWatermarkPassesTheBound() throws {
        let aNotB = EventPattern<Act>.kinds("A", [("B", true)], within: .seconds(10))
        var m = try PatternMachine(pattern: aNotB, outOfOrderness: .zero)
        #expect(feed(&m, [act("A", "k", 0), act("A", "j", 1), act("B", "j", 5000), act("C", "z", 10_000)]).isEmpty)
        // Strictly after k's bound, with no B for k: k matches; j saw its B.
        #expect(feed(&m, [act("C", "z", 10_001)]) == [match("k", act("A", "k", 0))])
        #expect(m.partialCount == 0)
    }

    @Test func absenceFiresBeforeALaterEventIsProcessed() throws {
        // A at 0, then A at 20,000 for the same key: the first's absence is decided before the second starts.
        let aNotB = EventPattern<Act>.kinds("A", [("B", true)], within: .seconds(10))
        var m = try PatternMachine(pattern: aNotB, outOfOrderness: .zero)
        #expect(feed(&m, [act("A", "k", 0), act("A", "k", 20_000)]) == [match("k", act("A", "k", 0))])
        #expect(feed(&m, [], finish: true) == [match("k", act("A", "k", 20_000))])
    }

    @Test func stepsThenAbsence() throws {
        let pattern = EventPattern<Act>.kinds("A", [("B", false), ("C", true)], within: .seconds(1))
        var m = try PatternMachine(pattern: pattern, outOfOrderness: .zero)
        _ = feed(&m, [act("A", "k", 0), act("B", "k", 100), act("A", "j", 0), act("B", "j", 200), act("C", "j", 300)])
        #expect(feed(&m, [act("Z", "z", 1001)]) == [match("k", act("A", "k", 0), act("B", "k", 100))])
    }

    @Test func stateStaysBoundedByTheWindow() throws {
        var m = try PatternMachine(pattern: aThenB, outOfOrderness: .seconds(1))
        for ms in stride(from: Int64(0), to: 200_000, by: 100) {
            _ = feed(&m, [act("A", "k\(ms % 7)", ms)])
            // A partial match lives 10 s of event time, the reorder buffer 1 s: 100 + 10 starts at most.
            #expect(m.partialCount <= 111)
            #expect(m.bufferedCount <= 11)
        }
    }

    @Test func patternsNeedABoundAndAbsenceLast() {
        #expect(throws: StreamKitError.self) {
            try PatternMachine(pattern: .first("A") { _ in true }.followedBy("B") { _ in true }, outOfOrderness: .zero)
        }
        let misplaced = EventPattern<Act>.kinds("A", [("B", true), ("C", false)], within: .seconds(1))
        #expect(throws: StreamKitError.invalidArgument("pattern A → B → C: notFollowedBy(\"B\") must be the last step"))
        {
            try PatternMachine(pattern: misplaced, outOfOrderness: .zero)
        }
    }
}

@Suite(.timeLimit(.minutes(1))) struct PatternSequenceTests {
    @Test func findsMatchesAndAbsencesInAStream() async throws {
        let acts = [act("A", "k", 0), act("A", "j", 10), act("B", "k", 500), act("A", "k", 2000)]
        let pattern = EventPattern<Act>.kinds("A", [("B", true)], within: .seconds(1))
        let outputs = try await acts.async.matching(pattern, key: \.key, time: \.time).collect()
        #expect(outputs == [match("j", act("A", "j", 10)), match("k", act("A", "k", 2000))])
    }
}
