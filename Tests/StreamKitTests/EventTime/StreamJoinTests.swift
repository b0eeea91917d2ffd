import DequeModule
import Testing

@testable import StreamKit

typealias JoinMachine = StreamJoinStateMachine<String, Event, Act>

func join(_ machine: inout JoinMachine, _ sides: [JoinSide<Event, Act>]) -> [JoinOutput<Event, Act>] {
    var output: Deque<JoinOutput<Event, Act>> = []
    for side in sides {
        switch side {
        case .left(let event): machine.receive(side, key: event.key, time: event.time, into: &output)
        case .right(let act): machine.receive(side, key: act.key, time: act.time, into: &output)
        }
    }
    return Array(output)
}

@Suite struct StreamJoinStateMachineTests {
    @Test func pairsWithinTheWindowEitherWayRound() throws {
        var m = try JoinMachine(window: .seconds(1), outOfOrderness: .seconds(5))
        #expect(
            join(&m, [.left(ev("k", 1000)), .right(act("A", "k", 2000))]) == [
                .joined(ev("k", 1000), act("A", "k", 2000))
            ])
        // -1 is more than a window before 1000; 0 is exactly a window before it.
        #expect(
            join(&m, [.right(act("B", "k", -1)), .right(act("C", "k", 0))]) == [
                .joined(ev("k", 1000), act("C", "k", 0))
            ])
        // A left element pairs with every right one in reach, in arrival order.
        #expect(
            join(&m, [.left(ev("k", 500))]) == [
                .joined(ev("k", 500), act("B", "k", -1)), .joined(ev("k", 500), act("C", "k", 0)),
            ])
    }

    @Test func onlyEqualKeysPair() throws {
        var m = try JoinMachine(window: .seconds(1), outOfOrderness: .zero)
        #expect(
            join(&m, [.left(ev("x", 0)), .right(act("A", "y", 0)), .right(act("A", "x", 10))]) == [
                .joined(ev("x", 0), act("A", "x", 10))
            ])
    }

    @Test func elementsBehindTheWatermarkAreLateAndOldOnesAreDropped() throws {
        var m = try JoinMachine(window: .seconds(1), outOfOrderness: .zero)
        #expect(join(&m, [.left(ev("k", 0)), .right(act("A", "k", 5000))]).isEmpty)
        #expect(m.bufferedCount == 1) // the left element at 0 can pair with nothing at or after 5000
        #expect(join(&m, [.right(act("B", "k", 4500))]) == [.late(.right(act("B", "k", 4500)))])
    }

    @Test func buffersStayWithinTheWindowPlusOutOfOrderness() throws {
        var m = try JoinMachine(window: .seconds(2), outOfOrderness: .seconds(1))
        var pairs = 0
        for ms in stride(from: Int64(0), to: 60_000, by: 100) {
            pairs += join(&m, [.left(ev("k\(ms % 3)", ms)), .right(act("A", "k\(ms % 3)", ms))]).count
            // Kept: both sides' elements of the last 3 s (+ the element at the boundary).
            #expect(m.bufferedCount <= 2 * 31)
        }
        #expect(pairs > 0)
    }

    @Test func aWindowThatIsNotWholeMillisecondsIsATypedError() {
        #expect(throws: StreamKitError.self) { try JoinMachine(window: .microseconds(1), outOfOrderness: .zero) }
    }
}

@Suite(.timeLimit(.minutes(1))) struct EventTimeJoinTests {
    @Test func joinsTwoSequencesByKeyWithinTheWindow() async throws {
        let orders = [ev("o1", 0), ev("o2", 1000), ev("o3", 2000)]
        let payments = [act("paid", "o2", 1500), act("paid", "o1", 1800), act("paid", "o3", 9000)]
        let outputs = try await eventTimeJoin(
            orders.async, payments.async, leftKey: \.key, rightKey: \.key, leftTime: \.time, rightTime: \.time,
            within: .seconds(1)
        ).collect()
        // o1 was paid 1.8 s later (outside the window), o3 7 s later.
        #expect(outputs == [.joined(ev("o2", 1000), act("paid", "o2", 1500))])
    }
}
