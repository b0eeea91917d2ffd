import AsyncAlgorithms
import Testing

@testable import StreamKit

/// Cancellation guarantees of `delay`, `keepAlive` and `throttle`: cancelling
/// the consuming task while the operator waits (on the clock or on the
/// upstream) ends the iteration at once, and the upstream sees the end
/// (cancelled, or its iterator released); nothing keeps running afterwards.

/// An upstream the test feeds by hand, reporting when it is terminated.
private func controlledStream() -> (AsyncStream<Int>, AsyncStream<Int>.Continuation, Signal) {
    let terminated = Signal()
    let (stream, continuation) = AsyncStream<Int>.makeStream()
    continuation.onTermination = { _ in terminated.fire() }
    return (stream, continuation, terminated)
}

@Suite(.timeLimit(.minutes(1))) struct TimingCancellationTests {
    // MARK: delay

    @Test func delayCancelledWhileWaitingOnTheClockThrowsAndCancelsTheUpstream() async throws {
        let clock = ManualClock()
        let (stream, input, terminated) = controlledStream()
        let consumer = Task {
            var iterator = stream.delay(.seconds(2), clock: clock).makeAsyncIterator()
            return try await iterator.next()
        }
        input.yield(1)
        await clock.waitForSleepers(count: 1) // 1 arrived; the consumer waits for its due time
        consumer.cancel()
        await #expect(throws: CancellationError.self) { _ = try await consumer.value }
        await terminated.wait() // the reader task's pull on the upstream was cancelled
        #expect(clock.sleeperCount == 0)
    }

    @Test func delayCancelledWhileWaitingOnTheUpstreamEndsAndCancelsTheUpstream() async throws {
        let probe = Probe()
        let clock = ManualClock()
        let consumer = Task {
            var iterator = ProbedSequence(count: 100, probe: probe, hangAt: 0).delay(.seconds(2), clock: clock)
                .makeAsyncIterator()
            return try await iterator.next()
        }
        #expect(await eventually { probe.iteratorsAlive == 1 }) // the reader is pulling (and hangs)
        consumer.cancel()
        // The pump reports a cancelled wait as the end of the stream.
        #expect(try await consumer.value == nil)
        #expect(await eventually { probe.sawCancellation && probe.iteratorsAlive == 0 })
        #expect(clock.sleeperCount == 0)
    }

    @Test func delayCancelledWithABackPressuredReaderStopsTheReader() async throws {
        let probe = Probe()
        let clock = ManualClock()
        let consumer = Task {
            var iterator = ProbedSequence(count: 100, probe: probe).delay(.seconds(2), bufferSize: 1, clock: clock)
                .makeAsyncIterator()
            return try await iterator.next()
        }
        await clock.waitForSleepers(count: 1)
        // 0 is with the consumer, 1 fills the buffer: the reader waits for room.
        #expect(await eventually { probe.pulled == 2 })
        consumer.cancel()
        await #expect(throws: CancellationError.self) { _ = try await consumer.value }
        #expect(await eventually { probe.iteratorsAlive == 0 })
        #expect(probe.pulled == 2)
    }

    @Test func delayLeavesNothingRunningAfterCompletion() async throws {
        let probe = Probe()
        let clock = ManualClock()
        // A zero delay on a clock that never moves: every element is due on arrival.
        let all = try await ProbedSequence(count: 3, probe: probe).delay(.zero, clock: clock).collect()
        #expect(all == [0, 1, 2])
        #expect(await eventually { probe.iteratorsAlive == 0 })
        #expect(clock.sleeperCount == 0)
    }

    // MARK: keepAlive

    @Test func keepAliveCancelledWhileWaitingEndsAndCancelsUpstreamAndTimer() async throws {
        let clock = ManualClock()
        let (stream, _, terminated) = controlledStream()
        let consumer = Task {
            var iterator = stream.keepAlive(.seconds(1), clock: clock, inject: { -1 }).makeAsyncIterator()
            let first = try await iterator.next()
            let second = try await iterator.next()
            return [first, second]
        }
        await clock.waitForSleepers(count: 1)
        clock.advance(by: .seconds(1)) // the first wait ends in an injected element
        await clock.waitForSleepers(count: 1) // the second wait: timer re-armed, upstream quiet
        consumer.cancel()
        // The pump reports a cancelled wait as the end of the stream.
        #expect(try await consumer.value == [-1, nil])
        await terminated.wait()
        #expect(await eventually { clock.sleeperCount == 0 }) // the timer task ended too
    }

    @Test func keepAliveLeavesNothingRunningAfterCompletion() async throws {
        let probe = Probe()
        let clock = ManualClock()
        let all = try await ProbedSequence(count: 3, probe: probe).keepAlive(.seconds(1), clock: clock, inject: { -1 })
            .collect()
        #expect(all == [0, 1, 2])
        #expect(await eventually { probe.iteratorsAlive == 0 && clock.sleeperCount == 0 })
    }

    // MARK: throttle

    @Test func throttleCancelledWhileWaitingOnTheClockThrowsAndReleasesTheUpstream() async throws {
        let probe = Probe()
        let clock = ManualClock()
        let consumer = Task {
            var iterator = ProbedSequence(count: 100, probe: probe)
                .throttle(cost: 1, per: .seconds(1), burst: 1, clock: clock).makeAsyncIterator()
            _ = try await iterator.next() // the burst
            return try await iterator.next() // waits a second for a token
        }
        await clock.waitForSleepers(count: 1)
        consumer.cancel()
        await #expect(throws: CancellationError.self) { _ = try await consumer.value }
        #expect(await eventually { probe.iteratorsAlive == 0 })
        #expect(probe.pulled == 2) // pull-through: nothing read ahead
        #expect(clock.sleeperCount == 0)
    }

    @Test func throttleCancelledWhileWaitingOnTheUpstreamEndsAndCancelsTheUpstream() async throws {
        let clock = ManualClock()
        let (stream, input, terminated) = controlledStream()
        let gotFirst = Signal()
        let consumer = Task {
            var iterator = stream.throttle(cost: 1, per: .seconds(1), burst: 5, clock: clock).makeAsyncIterator()
            let first = try await iterator.next()
            gotFirst.fire()
            let second = try await iterator.next() // the upstream stays quiet
            return [first, second]
        }
        input.yield(1)
        await gotFirst.wait()
        consumer.cancel()
        // Pull-through: the upstream's own answer to cancellation (AsyncStream: nil) comes out.
        #expect(try await consumer.value == [1, nil])
        await terminated.wait()
        #expect(clock.sleeperCount == 0)
    }

    @Test func throttleCancelledWhileWaitingOnAThrowingUpstreamPassesItsError() async throws {
        let probe = Probe()
        let clock = ManualClock()
        let consumer = Task {
            for try await _ in ProbedSequence(count: 100, probe: probe, hangAt: 1)
                .throttle(cost: 1, per: .seconds(1), burst: 5, clock: clock)
            {}
        }
        #expect(await eventually { probe.pulled == 1 })
        consumer.cancel()
        await #expect(throws: CancellationError.self) { try await consumer.value }
        #expect(await eventually { probe.sawCancellation && probe.iteratorsAlive == 0 })
    }
}
