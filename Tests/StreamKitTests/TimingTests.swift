import AsyncAlgorithms
import Testing

@testable import StreamKit

/// An upstream the test feeds by hand, reporting when it is cancelled.
private func controlledStream() -> (AsyncStream<Int>, AsyncStream<Int>.Continuation, Signal) {
    let terminated = Signal()
    let (stream, continuation) = AsyncStream<Int>.makeStream()
    continuation.onTermination = { _ in terminated.fire() }
    return (stream, continuation, terminated)
}

/// Advances `clock` by `step` once something sleeps on it.
private func advanceWhenSleeping(_ clock: ManualClock, by step: Duration) -> Task<Void, Never> {
    Task {
        await clock.waitForSleepers(count: 1)
        clock.advance(by: step)
    }
}

@Suite(.timeLimit(.minutes(1))) struct TimingTests {
    @Test func idleTimeoutFailsWhenTheUpstreamStaysQuiet() async throws {
        let clock = ManualClock()
        let (stream, input, terminated) = controlledStream()
        var iterator = stream.idleTimeout(.seconds(5), clock: clock).makeAsyncIterator()
        input.yield(1)
        #expect(try await iterator.next() == 1)
        let advancer = advanceWhenSleeping(clock, by: .seconds(5))
        await #expect(throws: StreamKitError.idleTimeout(.seconds(5))) { _ = try await iterator.next() }
        await advancer.value
        await terminated.wait() // the upstream was cancelled
    }

    @Test func idleTimeoutPassesABusyStreamThrough() async throws {
        let all = try await (0..<100).async.idleTimeout(.seconds(1), clock: ManualClock()).collect()
        #expect(all == Array(0..<100))
    }

    @Test func completionTimeoutFailsALongStreamEvenWithElementsFlowing() async throws {
        let clock = ManualClock()
        let (stream, input, terminated) = controlledStream()
        var iterator = stream.completionTimeout(.seconds(10), clock: clock).makeAsyncIterator()
        input.yield(1)
        #expect(try await iterator.next() == 1)
        clock.advance(by: .seconds(10))
        input.yield(2)
        await #expect(throws: StreamKitError.completionTimeout(.seconds(10))) { _ = try await iterator.next() }
        await terminated.wait()
    }

    @Test func initialTimeoutOnlyGuardsTheFirstElement() async throws {
        let clock = ManualClock()
        let (stream, input, _) = controlledStream()
        var iterator = stream.initialTimeout(.seconds(2), clock: clock).makeAsyncIterator()
        input.yield(1)
        #expect(try await iterator.next() == 1)
        clock.advance(by: .seconds(60))
        input.yield(2)
        input.finish()
        #expect(try await iterator.next() == 2)
        #expect(try await iterator.next() == nil)

        let (quiet, _, terminated) = controlledStream()
        var late = quiet.initialTimeout(.seconds(2), clock: clock).makeAsyncIterator()
        let advancer = advanceWhenSleeping(clock, by: .seconds(2))
        await #expect(throws: StreamKitError.initialTimeout(.seconds(2))) { _ = try await late.next() }
        await advancer.value
        await terminated.wait()
    }

    @Test func takeWithinCompletesOnTimeAndCancelsTheUpstream() async throws {
        let clock = ManualClock()
        let (stream, input, terminated) = controlledStream()
        var iterator = stream.takeWithin(.seconds(3), clock: clock).makeAsyncIterator()
        input.yield(1)
        #expect(try await iterator.next() == 1)
        let advancer = advanceWhenSleeping(clock, by: .seconds(3))
        #expect(try await iterator.next() == nil)
        await advancer.value
        await terminated.wait()
    }

    @Test func keepAliveInjectsWhileQuiet() async throws {
        let clock = ManualClock()
        let (stream, input, _) = controlledStream()
        var iterator = stream.keepAlive(.seconds(1), clock: clock, inject: { -1 }).makeAsyncIterator()
        let advancer = advanceWhenSleeping(clock, by: .seconds(1))
        #expect(try await iterator.next() == -1)
        await advancer.value
        input.yield(7)
        #expect(try await iterator.next() == 7)
        input.finish()
        #expect(try await iterator.next() == nil)
    }

    @Test func delayShiftsEachElementFromItsArrival() async throws {
        let clock = ManualClock()
        let (stream, input, _) = controlledStream()
        var iterator = stream.delay(.seconds(2), clock: clock).makeAsyncIterator()
        input.yield(1)
        input.yield(2)
        let advancer = advanceWhenSleeping(clock, by: .seconds(2))
        #expect(try await iterator.next() == 1)
        await advancer.value
        // 2 arrived at the same time as 1: it is due already, not two seconds later.
        #expect(try await iterator.next() == 2)
        #expect(clock.now == ManualClock.Instant(offset: .seconds(2)))
        input.finish()
        #expect(try await iterator.next() == nil)
    }

    @Test func throttleShapesToTheRateAfterTheBurst() async throws {
        let clock = ManualClock()
        let consumer = Task {
            var stamps: [Duration] = []
            for try await _ in (0..<5).async.throttle(cost: 1, per: .seconds(1), burst: 2, clock: clock) {
                stamps.append(clock.now.offset)
            }
            return stamps
        }
        for _ in 0..<3 {
            await clock.waitForSleepers(count: 1)
            clock.advance(by: .seconds(1))
        }
        // Two at once (the burst), then one a second: delayed, none dropped.
        #expect(try await consumer.value == [.zero, .zero, .seconds(1), .seconds(2), .seconds(3)])
    }

    @Test func throttleWeighsElementsByCost() async throws {
        let clock = ManualClock()
        let consumer = Task {
            var stamps: [Duration] = []
            for try await _ in [4, 4].async.throttle(cost: 4, per: .seconds(1), burst: 4, clock: clock, costOf: { $0 })
            {
                stamps.append(clock.now.offset)
            }
            return stamps
        }
        await clock.waitForSleepers(count: 1)
        clock.advance(by: .seconds(1))
        #expect(try await consumer.value == [.zero, .seconds(1)])
    }

    @Test func throttleRejectsAZeroRate() async throws {
        await #expect(throws: StreamKitError.self) {
            for try await _ in (0..<3).async.throttle(cost: 0, per: .seconds(1), burst: 1) {}
        }
    }

    @Test func manualClockSleepIsCancellable() async throws {
        let clock = ManualClock()
        let sleeper = Task { try await clock.sleep(until: clock.now.advanced(by: .seconds(1)), tolerance: nil) }
        await clock.waitForSleepers(count: 1)
        sleeper.cancel()
        await #expect(throws: CancellationError.self) { try await sleeper.value }
        #expect(clock.sleeperCount == 0)
    }
}
