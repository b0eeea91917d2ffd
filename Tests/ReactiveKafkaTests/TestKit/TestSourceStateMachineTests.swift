import Testing

@testable import ReactiveKafkaTestKit

/// ``TestSourceStateMachine`` case by case: what each pull, stop, shutdown and stream end does
/// in each phase. Waiters are plain integers here.
@Suite struct TestSourceStateMachineTests {
    typealias Machine = TestSourceStateMachine<String, Int>

    static func emitted(_ action: Machine.NextAction) -> String? {
        if case .emit(let element) = action { return element }
        return nil
    }

    static func finished(_ action: Machine.NextAction) -> Bool? {
        if case .finish(let close) = action { return close }
        return nil
    }

    static func suspends(_ action: Machine.NextAction) -> Bool {
        if case .suspend = action { return true }
        return false
    }

    @Test func emitsInOrderThenFinishesAndClosesAfterTheLastElement() {
        var machine = Machine(elements: ["a", "b"], completion: .afterLastElement)
        #expect(machine.claim() == .start)
        #expect(Self.emitted(machine.next()) == "a")
        #expect(Self.emitted(machine.next()) == "b")
        #expect(!machine.isClosed)
        #expect(Self.finished(machine.next()) == true)
        #expect(machine.isClosed)
        // Pulled again after the end: finished, nothing more to report.
        #expect(Self.finished(machine.next()) == false)
        let endedAgain = machine.streamEnded()
        #expect(!endedAgain)
    }

    @Test func whenStoppedItSuspendsAfterTheLastElementUntilAStop() {
        var machine = Machine(elements: ["a"], completion: .whenStopped)
        #expect(machine.claim() == .start)
        #expect(Self.emitted(machine.next()) == "a")
        #expect(Self.suspends(machine.next()))
        #expect(machine.suspend(7) == nil)
        let stop = machine.stop()
        #expect(stop.resume == 7)
        #expect(!stop.closed)
        #expect(Self.finished(machine.next()) == false)
        // Stopped: the "consumer" stays open after the stream's end, until shutdown.
        let endedAgain = machine.streamEnded()
        #expect(!endedAgain)
        #expect(!machine.isClosed)
        let shutdown = machine.shutdown()
        #expect(shutdown.resume == nil)
        #expect(shutdown.closed)
        #expect(machine.isClosed)
        #expect(!machine.shutdown().closed)
    }

    @Test func aStopBetweenTheSuspendDecisionAndTheParkingResumesAtOnce() {
        var machine = Machine(elements: [], completion: .whenStopped)
        #expect(machine.claim() == .start)
        #expect(Self.suspends(machine.next()))
        #expect(machine.stop().resume == nil)
        #expect(machine.suspend(3) == 3)
        #expect(Self.finished(machine.next()) == false)
    }

    @Test func aStopMidStreamCompletesItWithoutEmittingTheRest() {
        var machine = Machine(elements: ["a", "b", "c"], completion: .afterLastElement)
        #expect(machine.claim() == .start)
        #expect(Self.emitted(machine.next()) == "a")
        let stop = machine.stop()
        #expect(stop.resume == nil)
        #expect(!stop.closed)
        #expect(Self.finished(machine.next()) == false)
        #expect(!machine.stop().closed)
    }

    @Test func aShutdownWakesTheParkedPullAndCloses() {
        var machine = Machine(elements: [], completion: .whenStopped)
        #expect(machine.claim() == .start)
        #expect(Self.suspends(machine.next()))
        #expect(machine.suspend(1) == nil)
        let shutdown = machine.shutdown()
        #expect(shutdown.resume == 1)
        #expect(shutdown.closed)
        #expect(Self.finished(machine.next()) == false)
    }

    @Test func aStopBeforeTheFirstPullClosesAndTheStreamStartsStopped() {
        var machine = Machine(elements: ["a"], completion: .afterLastElement)
        let stop = machine.stop()
        #expect(stop.closed)
        #expect(machine.isClosed)
        #expect(machine.claim() == .startStopped)
        #expect(Self.finished(machine.next()) == false)
    }

    @Test func aShutdownBeforeTheFirstPullClosesOnce() {
        var machine = Machine(elements: ["a"], completion: .whenStopped)
        #expect(machine.shutdown().closed)
        #expect(!machine.stop().closed)
        #expect(machine.claim() == .startStopped)
    }

    @Test func aSecondStreamIsRefused() {
        var machine = Machine(elements: ["a"], completion: .afterLastElement)
        #expect(machine.claim() == .start)
        #expect(machine.claim() == .alreadyClaimed)
    }

    @Test func aStreamEndingWhileRunningClosesTheConsumer() {
        var machine = Machine(elements: ["a", "b"], completion: .whenStopped)
        #expect(machine.claim() == .start)
        #expect(Self.emitted(machine.next()) == "a")
        let ended = machine.streamEnded()
        #expect(ended)
        #expect(machine.isClosed)
        let endedAgain = machine.streamEnded()
        #expect(!endedAgain)
        #expect(!machine.shutdown().closed)
    }

    @Test func aCancelledWaitIsTakenOutOnce() {
        var machine = Machine(elements: [], completion: .whenStopped)
        #expect(machine.claim() == .start)
        #expect(Self.suspends(machine.next()))
        #expect(machine.suspend(5) == nil)
        #expect(machine.cancelWait() == 5)
        #expect(machine.cancelWait() == nil)
        #expect(machine.stop().resume == nil)
    }
}
