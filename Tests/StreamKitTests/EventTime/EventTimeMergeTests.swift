import Synchronization
import Testing

@testable import StreamKit

typealias MergeMachine = EventTimeMergeStateMachine<Int, ManualClock.Instant>

func at(_ seconds: Int64) -> ManualClock.Instant { ManualClock.Instant(offset: .seconds(seconds)) }

extension MergeMachine {
    mutating func push(_ index: Int, _ ms: Int64) { push(index, time: EventTime(milliseconds: ms), element: Int(ms)) }
}

@Suite struct EventTimeMergeStateMachineTests {
    @Test func theEarliestHeadGoesOnceEveryInputHasOne() {
        var m = MergeMachine(inputCount: 2, bufferSize: 4, idleTimeout: nil, now: at(0))
        m.push(0, 10)
        m.push(0, 30)
        #expect(m.decide(now: at(0)) == .wait(until: nil)) // input 1 may still send something earlier
        m.push(1, 20)
        #expect(m.decide(now: at(0)) == .emit(0))
        #expect(m.take(0, now: at(0)) == 10)
        #expect(m.decide(now: at(0)) == .emit(1))
        #expect(m.take(1, now: at(0)) == 20)
        #expect(m.decide(now: at(0)) == .wait(until: nil))
        m.finish(1)
        #expect(m.decide(now: at(0)) == .emit(0))
        #expect(m.take(0, now: at(0)) == 30)
        #expect(m.decide(now: at(0)) == .wait(until: nil))
        m.finish(0)
        #expect(m.decide(now: at(0)) == .finished)
    }

    @Test func equalTimesGoInInputOrder() {
        var m = MergeMachine(inputCount: 3, bufferSize: 1, idleTimeout: nil, now: at(0))
        m.push(2, 5)
        m.push(1, 5)
        m.push(0, 7)
        #expect(m.decide(now: at(0)) == .emit(1))
    }

    @Test func anEmptyInputHoldsTheMergeBackOnlyUntilItIsIdle() {
        var m = MergeMachine(inputCount: 2, bufferSize: 4, idleTimeout: .seconds(5), now: at(0))
        m.push(0, 100)
        #expect(m.decide(now: at(1)) == .wait(until: at(5)))
        #expect(m.decide(now: at(5)) == .emit(0))
        _ = m.take(0, now: at(5))
        // Input 0 has just emptied: it holds the merge back for 5 s of its own.
        #expect(m.decide(now: at(6)) == .wait(until: at(10)))
        // Both idle and empty: wait for either to send.
        #expect(m.decide(now: at(10)) == .wait(until: nil))
        // The idle input sends again: it is no longer idle, and once empty again it holds the merge back anew.
        m.push(1, 50)
        m.push(0, 200)
        #expect(m.decide(now: at(11)) == .emit(1))
        _ = m.take(1, now: at(11))
        #expect(m.decide(now: at(12)) == .wait(until: at(16)))
    }

    @Test func eachInputHasItsOwnBoundedQueue() {
        var m = MergeMachine(inputCount: 2, bufferSize: 2, idleTimeout: nil, now: at(0))
        m.push(0, 1)
        #expect(m.hasRoom(0))
        m.push(0, 2)
        #expect(!m.hasRoom(0))
        #expect(m.hasRoom(1))
    }
}

/// An input a test feeds by hand.
func manualInput() -> (AsyncThrowingStream<Int, any Error>, AsyncThrowingStream<Int, any Error>.Continuation) {
    AsyncThrowingStream.makeStream(of: Int.self, throwing: (any Error).self, bufferingPolicy: .unbounded)
}

@Suite(.timeLimit(.minutes(1))) struct EventTimeMergeSequenceTests {
    @Test func mergesOrderedInputsInEventTimeOrder() async throws {
        let inputs = [[1, 4, 9, 12], [2, 3, 10], [], [5, 6, 7, 8, 11]].map { AnyAsyncSequence($0.async) }
        let merged = try await eventTimeMerge(inputs, time: { EventTime(milliseconds: Int64($0)) }, bufferSize: 2)
            .collect()
        #expect(merged == Array(1...12))
    }

    @Test func aSilentInputHoldsTheMergeBackUntilItSendsOrEnds() async throws {
        let (fast, fastFeed) = manualInput()
        let (slow, slowFeed) = manualInput()
        let received = Received()
        let consumer = received.consume(eventTimeMerge([fast, slow], time: { EventTime(milliseconds: Int64($0)) }))
        fastFeed.yield(10)
        fastFeed.yield(20)
        fastFeed.finish()
        for _ in 0..<1_000 { await Task.yield() }
        #expect(received.values == []) // the slow input might still send something before 10
        slowFeed.yield(15)
        #expect(await eventually { received.values == [10, 15] })
        for _ in 0..<1_000 { await Task.yield() }
        #expect(received.values == [10, 15]) // and something before 20
        slowFeed.finish()
        try await consumer.value
        #expect(received.values == [10, 15, 20])
    }

    @Test func anIdleInputStopsHoldingTheMergeBackAfterTheIdleTimeout() async throws {
        let clock = ManualClock()
        let (busy, busyFeed) = manualInput()
        let (quiet, quietFeed) = manualInput()
        let received = Received()
        let consumer = received.consume(
            eventTimeMerge(
                [busy, quiet], time: { EventTime(milliseconds: Int64($0)) }, idleTimeout: .seconds(30), clock: clock))
        busyFeed.yield(100)
        busyFeed.yield(200)
        // The consumer waits for the quiet input, with a timer at its idle deadline.
        await clock.waitForSleepers(count: 1)
        #expect(received.values == [])
        clock.advance(by: .seconds(30))
        #expect(await eventually { received.values == [100, 200] })
        // The quiet input wakes up with an element earlier than what went out. The busy input, empty
        // since 200 went out, holds the merge back again (for up to 30 s) until it ends; then 50 goes out.
        quietFeed.yield(50)
        for _ in 0..<1_000 { await Task.yield() }
        #expect(received.values == [100, 200])
        busyFeed.finish()
        #expect(await eventually { received.values == [100, 200, 50] })
        quietFeed.finish()
        try await consumer.value
        #expect(received.values == [100, 200, 50])
    }

    @Test func aFastInputIsPulledOnlyAsFarAsItsBuffer() async throws {
        let probe = Probe()
        let (silent, silentFeed) = manualInput()
        let inputs = [AnyAsyncSequence(ProbedSequence(count: 1_000, probe: probe)), AnyAsyncSequence(silent)]
        let consumer = Task {
            try await eventTimeMerge(inputs, time: { EventTime(milliseconds: Int64($0)) }, bufferSize: 4).collect()
        }
        // Four queued and one held by its parked producer; then it waits for room.
        #expect(await eventually { probe.pulled == 5 })
        for _ in 0..<1_000 { await Task.yield() }
        #expect(probe.pulled == 5)
        silentFeed.finish()
        #expect(try await consumer.value == Array(0..<1_000))
    }

    @Test func anInputErrorFailsTheMergeAndCancelsTheOthers() async throws {
        let probe = Probe()
        let (failing, failingFeed) = manualInput()
        let inputs = [AnyAsyncSequence(ProbedSequence(count: 10, probe: probe, hangAt: 0)), AnyAsyncSequence(failing)]
        failingFeed.finish(throwing: TestError(tag: 7))
        await #expect(throws: TestError(tag: 7)) {
            try await eventTimeMerge(inputs, time: { EventTime(milliseconds: Int64($0)) }).collect()
        }
        #expect(await eventually { probe.sawCancellation })
    }

    @Test func cancellingTheConsumerCancelsEveryInput() async throws {
        let probe = Probe()
        let inputs = [
            ProbedSequence(count: 10, probe: probe, hangAt: 0), ProbedSequence(count: 10, probe: probe, hangAt: 3),
        ]
        let consumer = Task { try await eventTimeMerge(inputs, time: { EventTime(milliseconds: Int64($0)) }).collect() }
        consumer.cancel()
        _ = try? await consumer.value
        #expect(await eventually { probe.iteratorsAlive == 0 })
    }

    @Test func aNonPositiveIdleTimeoutIsATypedError() async {
        await #expect(throws: StreamKitError.self) {
            try await eventTimeMerge([[1].async], time: { EventTime(milliseconds: Int64($0)) }, idleTimeout: .zero)
                .collect()
        }
    }
}

/// What a consumer task received so far.
final class Received: Sendable {
    private let state = Mutex<[Int]>([])
    var values: [Int] { state.withLock { $0 } }

    func consume<S: AsyncSequence & Sendable>(_ sequence: S) -> Task<Void, any Error> where S.Element == Int {
        Task {
            for try await value in sequence { state.withLock { $0.append(value) } }
        }
    }
}
