import AsyncAlgorithms
import Testing

@testable import StreamKit

@Suite(.timeLimit(.minutes(1))) struct MapAsyncTests {
    @Test func emitsResultsInInputOrderWhateverTheCompletionOrder() async throws {
        let results = try await (0..<50).async.mapAsync(parallelism: 8) { n in
            for _ in 0..<((50 - n) % 7) { await Task.yield() }
            return n * 2
        }.collect()
        #expect(results == (0..<50).map { $0 * 2 })
    }

    @Test func reachesTheFullParallelismConcurrently() async throws {
        let barrier = Barrier(count: 8)
        let probe = Probe()
        var iterator = (0..<64).async.mapAsync(parallelism: 8) { n in
            probe.enter()
            // Each call waits until 8 calls are in flight at once: this completes only with real concurrency.
            await barrier.arrive()
            probe.leave()
            return n
        }.makeAsyncIterator()
        var all: [Int] = []
        while let n = try await iterator.next() { all.append(n) }
        #expect(all == Array(0..<64))
        #expect(probe.maxInFlight == 8)
        #expect(iterator.maxConcurrencyReached == 8)
    }

    @Test func reachesFullParallelismAfterCheapTransformsToo() async throws {
        // 100 instant transforms (the consumer runs those itself), then 8 that
        // each wait until 8 are in flight: the stage must still spread them out.
        let barrier = Barrier(count: 8)
        let results = try await (0..<108).async.mapAsync(parallelism: 8) { n -> Int in
            if n >= 100 { await barrier.arrive() }
            return n
        }.collect()
        #expect(results == Array(0..<108))
    }

    @Test func neverHasMoreThanParallelismElementsInFlight() async throws {
        let probe = Probe()
        var emitted = 0
        for try await _ in ProbedSequence(count: 200, probe: probe).mapAsync(
            parallelism: 4,
            { n -> Int in
                probe.enter()
                defer { probe.leave() }
                await Task.yield()
                return n
            })
        {
            emitted += 1
            // Pulled but not yet emitted never exceeds the parallelism.
            #expect(probe.pulled - emitted <= 4)
            #expect(probe.maxInFlight <= 4)
        }
        #expect(emitted == 200)
    }

    @Test func unorderedEmitsEveryElementAndFastOnesFirst() async throws {
        let slowStarted = Signal()
        let release = Signal()
        var iterator = (0..<5).async.mapAsyncUnordered(parallelism: 5) { n -> Int in
            if n == 0 {
                slowStarted.fire()
                await release.wait()
            }
            return n
        }.makeAsyncIterator()
        var first: [Int] = []
        for _ in 0..<4 { first.append(try await iterator.next()!) }
        #expect(Set(first) == [1, 2, 3, 4])
        release.fire()
        #expect(try await iterator.next() == 0)
        #expect(try await iterator.next() == nil)
    }

    @Test func upstreamErrorArrivesAfterEveryEarlierElement() async throws {
        let probe = Probe()
        var got: [Int] = []
        await #expect(throws: TestError(tag: 5)) {
            for try await n in ProbedSequence(count: 10, probe: probe, failAt: 5).mapAsync(parallelism: 3, { $0 }) {
                got.append(n)
            }
        }
        #expect(got == [0, 1, 2, 3, 4])
    }

    @Test func transformErrorFailsAfterEarlierResultsInOrder() async throws {
        var got: [Int] = []
        await #expect(throws: TestError(tag: 3)) {
            for try await n in (0..<10).async.mapAsync(
                parallelism: 4,
                { n -> Int in
                    if n == 3 { throw TestError(tag: 3) }
                    return n
                })
            {
                got.append(n)
            }
        }
        #expect(got == [0, 1, 2])
    }

    @Test func cancellingTheConsumerCancelsInFlightWorkAndUpstream() async throws {
        let probe = Probe()
        let started = Barrier(count: 3)
        let inFlightCancelled = Probe()
        let consumer = Task {
            for try await _ in ProbedSequence(count: 100, probe: probe, hangAt: 50).mapAsync(
                parallelism: 2,
                { n -> Int in
                    await started.arrive()
                    // Wait for cancellation, as a slow service call would.
                    let never = AsyncStream<Int> { _ in }
                    for await _ in never {}
                    inFlightCancelled.enter()
                    return n
                })
            {}
        }
        await started.arrive() // both transforms are running
        consumer.cancel()
        _ = try? await consumer.value
        #expect(await eventually { inFlightCancelled.maxInFlight == 2 })
        #expect(await eventually { probe.iteratorsAlive == 0 })
    }

    @Test func droppingTheIteratorEarlyReleasesEverything() async throws {
        let probe = Probe()
        do {
            var iterator = ProbedSequence(count: 1_000, probe: probe).mapAsync(parallelism: 4) { $0 }
                .makeAsyncIterator()
            _ = try await iterator.next()
            _ = try await iterator.next()
        }
        #expect(await eventually { probe.iteratorsAlive == 0 })
        #expect(probe.pulled <= 2 + 4 + 4)
    }

    @Test func noWorkerOutlivesCompletion() async throws {
        let probe = Probe()
        weak var storage: MapAsyncStorage<ProbedSequence, Int>?
        do {
            var iterator = ProbedSequence(count: 100, probe: probe).mapAsync(parallelism: 8) { $0 }.makeAsyncIterator()
            storage = iterator.lifetime?.storage
            while try await iterator.next() != nil {}
        }
        // Workers hold the storage: it is freed only once every worker task has exited.
        #expect(await eventually { storage == nil })
        #expect(probe.iteratorsAlive == 0)
    }

    @Test func rejectsZeroParallelismWithAClearError() async throws {
        await #expect(throws: StreamKitError.self) {
            for try await _ in (0..<3).async.mapAsync(parallelism: 0, { $0 }) {}
        }
    }
}

@Suite struct MapAsyncStateMachineTests {
    @Test func pullsOnlyWithinTheWindowAndEmitsInOrder() {
        var machine = MapAsyncStateMachine<Int, Int>(parallelism: 2, ordered: true)
        #expect(machine.start().spawnWorker)
        machine.workerWoke()
        guard case .pull = machine.workerNext() else {
            Issue.record("expected pull")
            return
        }
        guard case .pullAgain = machine.pulled(10) else {
            Issue.record("expected pullAgain")
            return
        }
        guard case .stopPulling = machine.pulled(11) else {
            Issue.record("window of 2 is full")
            return
        }
        #expect(machine.room == 0)
        guard case .process(let i0, let v0, _) = machine.workerNext() else {
            Issue.record("expected work")
            return
        }
        guard case .process(let i1, _, _) = machine.workerNext() else {
            Issue.record("expected work")
            return
        }
        #expect(i0 == 0 && v0 == 10 && i1 == 1)
        _ = machine.completed(index: 1, .success(21))
        guard case .suspend = machine.consumerNext() else {
            Issue.record("index 0 not done: must wait")
            return
        }
        _ = machine.completed(index: 0, .success(20))
        guard case .emit(.success(20), _) = machine.consumerNext() else {
            Issue.record("expected 20")
            return
        }
        guard case .emit(.success(21), _) = machine.consumerNext() else {
            Issue.record("expected 21")
            return
        }
        _ = machine.upstreamEnded(nil)
        guard case .finished(nil) = machine.consumerNext() else {
            Issue.record("expected end")
            return
        }
    }

    @Test func upstreamErrorWaitsForTheWindowToDrain() {
        var machine = MapAsyncStateMachine<Int, Int>(parallelism: 4, ordered: false)
        _ = machine.start()
        machine.workerWoke()
        _ = machine.workerNext()
        _ = machine.pulled(1)
        _ = machine.upstreamEnded(TestError())
        guard case .suspend = machine.consumerNext() else {
            Issue.record("element 1 still in flight")
            return
        }
        guard case .process(let index, _, _) = machine.workerNext() else {
            Issue.record("expected work")
            return
        }
        _ = machine.completed(index: index, .success(1))
        guard case .emit(.success(1), _) = machine.consumerNext() else {
            Issue.record("expected 1")
            return
        }
        guard case .finished(let error?) = machine.consumerNext(), error is TestError else {
            Issue.record("expected error")
            return
        }
    }
}
