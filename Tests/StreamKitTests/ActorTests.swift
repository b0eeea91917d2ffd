import Testing

@testable import StreamKit

/// An actor doing slow work: each call waits at a barrier (so `parallelism` calls must really
/// be in flight at once) and the actor counts how many are in flight.
actor Solver {
    private(set) var inFlight = 0
    private(set) var maxInFlight = 0
    private(set) var solved = 0
    let barrier: Barrier?

    init(barrier: Barrier? = nil) { self.barrier = barrier }

    func solve(_ problem: Int) async -> Int {
        inFlight += 1
        maxInFlight = max(maxInFlight, inFlight)
        await barrier?.arrive() // the actor is reentrant: other calls run while this one waits
        inFlight -= 1
        solved += 1
        return problem * problem
    }
}

@Suite(.timeLimit(.minutes(1))) struct ActorTests {
    @Test func mapAsyncKeepsAtMostParallelismCallsInFlightOnAnActor() async throws {
        let solver = Solver(barrier: Barrier(count: 3))
        let probe = Probe()
        var emitted = 0
        for try await answer in ProbedSequence(count: 99, probe: probe).mapAsync(
            parallelism: 3, { await solver.solve($0) })
        {
            #expect(answer == emitted * emitted)
            emitted += 1
            #expect(probe.pulled - emitted <= 3) // back-pressure: nothing pulled beyond the calls in flight
        }
        #expect(emitted == 99)
        // Each call waited until 3 were in flight: the stage reached its parallelism and never went past it.
        #expect(await solver.maxInFlight == 3)
    }

    @Test func askReturnsTheAnswer() async throws {
        let solver = Solver()
        #expect(try await solver.ask(timeout: .seconds(60)) { await $0.solve(7) } == 49)
        #expect(try await ask(timeout: .seconds(60)) { await solver.solve(8) } == 64)
    }

    @Test func askRethrowsTheCalleesError() async {
        await #expect(throws: TestError(tag: 3)) {
            try await ask(timeout: .seconds(60)) { () async throws -> Int in throw TestError(tag: 3) }
        }
    }

    @Test func askFailsWithATypedErrorAfterItsTimeoutEvenIfTheCalleeIgnoresCancellation() async throws {
        let clock = ManualClock()
        let release = Signal()
        let call = Task {
            try await ask(timeout: .seconds(2), clock: clock) { () async -> Int in
                await release.wait() // does not honour cancellation
                return 1
            }
        }
        await clock.waitForSleepers(count: 1)
        clock.advance(by: .seconds(2))
        await #expect(throws: StreamKitError.askTimeout(.seconds(2))) { try await call.value }
        release.fire()
    }

    @Test func askTimeoutFailsTheStreamElementWithTheTypedError() async throws {
        let clock = ManualClock()
        let hang = Signal()
        let received = Received()
        let answers = [1, 2, 3].async.mapAsync(parallelism: 2) { n in
            // Only the second call asks on the clock (so exactly one timer sleeps); it never answers.
            n == 2
                ? try await ask(timeout: .seconds(1), clock: clock) { () async -> Int in
                    await hang.wait()
                    return n
                } : n
        }
        let run = received.consume(answers)
        await clock.waitForSleepers(count: 1)
        clock.advance(by: .seconds(1))
        await #expect(throws: StreamKitError.askTimeout(.seconds(1))) { try await run.value }
        #expect(received.values == [1])
        hang.fire()
    }

    @Test func cancellingTheCallerCancelsTheAsk() async throws {
        let clock = ManualClock()
        let call = Task {
            try await ask(timeout: .seconds(60), clock: clock) { () async throws -> Int in
                try await clock.sleep(until: clock.now.advanced(by: .seconds(3600)), tolerance: nil)
                return 0
            }
        }
        await clock.waitForSleepers(count: 2)
        call.cancel()
        await #expect(throws: CancellationError.self) { try await call.value }
        #expect(await eventually { clock.sleeperCount == 0 }) // the work and the timer were cancelled
    }

    @Test func aPoolOfActorsSharesTheWorkThroughBalance() async throws {
        let pool = (0..<3).map { _ in Solver() }
        let workers = Source.from(1...300).balance(into: pool.count)
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for (solver, jobs) in zip(pool, workers) {
                group.addTask {
                    var sum = 0
                    for try await square in jobs.mapAsync(
                        parallelism: 2,
                        { job in
                            try await solver.ask(timeout: .seconds(60)) { solver in await solver.solve(job) }
                        })
                    { sum += square }
                    return sum
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(total == (1...300).reduce(0) { $0 + $1 * $1 })
        var solved = 0
        for solver in pool {
            #expect(await solver.maxInFlight <= 2)
            solved += await solver.solved
        }
        #expect(solved == 300)
    }
}
