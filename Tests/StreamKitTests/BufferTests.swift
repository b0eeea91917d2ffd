import AsyncAlgorithms
import Testing

@testable import StreamKit

@Suite(.timeLimit(.minutes(1))) struct BufferTests {
    /// Takes the first element (which starts the reader), lets the reader run
    /// until it has pulled `pulledTarget` elements, then drains the rest.
    private func run(_ overflow: OverflowStrategy, pulledTarget: Int = 10) async throws -> (
        first: Int, rest: [Int], error: (any Error)?, stats: BufferStatistics
    ) {
        let probe = Probe()
        let stats = BufferStatistics()
        var iterator = ProbedSequence(count: 10, probe: probe).buffer(size: 3, overflow: overflow, statistics: stats)
            .makeAsyncIterator()
        let first = try await iterator.next()!
        #expect(await eventually { probe.pulled == pulledTarget })
        var rest: [Int] = []
        do {
            while let n = try await iterator.next() { rest.append(n) }
            return (first, rest, nil, stats)
        } catch {
            return (first, rest, error, stats)
        }
    }

    @Test func dropHeadKeepsTheNewest() async throws {
        let result = try await run(.dropHead)
        #expect(result.first == 0 && result.rest == [7, 8, 9])
        #expect(result.stats.dropped == 6 && result.stats.highWaterMark == 3)
    }

    @Test func dropTailReplacesTheYoungest() async throws {
        let result = try await run(.dropTail)
        #expect(result.rest == [1, 2, 9])
        #expect(result.stats.dropped == 6)
    }

    @Test func dropBufferClearsEverythingBuffered() async throws {
        let result = try await run(.dropBuffer)
        // 1,2,3 buffered; 4 clears them; 5,6 join; 7 clears; 8,9 join.
        #expect(result.rest == [7, 8, 9])
        #expect(result.stats.dropped == 6)
    }

    @Test func dropNewKeepsTheOldest() async throws {
        let result = try await run(.dropNew)
        #expect(result.rest == [1, 2, 3])
        #expect(result.stats.dropped == 6)
    }

    @Test func failDeliversTheBufferThenFails() async throws {
        let result = try await run(.fail, pulledTarget: 5)
        #expect(result.rest == [1, 2, 3])
        #expect(result.error as? StreamKitError == .bufferOverflow(size: 3))
    }

    @Test func backpressureLosesNothingAndBoundsThePull() async throws {
        let probe = Probe()
        var iterator = ProbedSequence(count: 100, probe: probe).buffer(size: 3, overflow: .backpressure)
            .makeAsyncIterator()
        var got = [try await iterator.next()!]
        for _ in 0..<1_000 { await Task.yield() }
        // One element handed over, three buffered, at most one more pulled and waiting for room.
        #expect(probe.pulled <= 5)
        while let n = try await iterator.next() {
            got.append(n)
            #expect(probe.pulled - got.count <= 4)
        }
        #expect(got == Array(0..<100))
    }

    @Test func upstreamErrorArrivesAfterBufferedElements() async throws {
        let probe = Probe()
        var got: [Int] = []
        await #expect(throws: TestError(tag: 6)) {
            for try await n in ProbedSequence(count: 10, probe: probe, failAt: 6).buffer(
                size: 4, overflow: .backpressure)
            {
                got.append(n)
            }
        }
        #expect(got == [0, 1, 2, 3, 4, 5])
    }

    @Test func cancellingTheConsumerCancelsTheUpstream() async throws {
        let probe = Probe()
        let consumer = Task {
            for try await _ in ProbedSequence(count: 100, probe: probe, hangAt: 2).buffer(
                size: 8, overflow: .backpressure)
            {}
        }
        #expect(await eventually { probe.pulled == 2 })
        consumer.cancel()
        _ = try? await consumer.value
        #expect(await eventually { probe.sawCancellation && probe.iteratorsAlive == 0 })
    }

    @Test func droppingTheIteratorStopsTheReader() async throws {
        let probe = Probe()
        do {
            var iterator = ProbedSequence(count: 1_000_000, probe: probe).buffer(size: 8, overflow: .backpressure)
                .makeAsyncIterator()
            _ = try await iterator.next()
        }
        #expect(await eventually { probe.iteratorsAlive == 0 })
        #expect(probe.pulled < 20)
    }

    @Test func rejectsZeroSize() async throws {
        await #expect(throws: StreamKitError.self) {
            for try await _ in (0..<3).async.buffer(size: 0, overflow: .dropHead) {}
        }
    }
}

@Suite struct PumpStateMachineTests {
    @Test func dropHeadAtCapacityDropsTheOldest() {
        var machine = PumpStateMachine<Int>(capacity: 2, overflow: .dropHead)
        for n in 0..<4 {
            guard case .buffered = machine.received(n) else {
                Issue.record("expected buffered")
                return
            }
        }
        #expect(Array(machine.buffer) == [2, 3])
        #expect(machine.dropped == 2 && machine.highWaterMark == 2)
    }

    @Test func backpressureSuspendsTheReaderWhenFull() {
        var machine = PumpStateMachine<Int>(capacity: 2, overflow: .backpressure)
        _ = machine.received(1)
        _ = machine.received(2)
        guard case .suspend = machine.readerWantsRoom() else {
            Issue.record("full buffer must suspend the reader")
            return
        }
        guard case .event(.element(1), _) = machine.next() else {
            Issue.record("expected 1")
            return
        }
        guard case .proceed = machine.readerWantsRoom() else {
            Issue.record("room again")
            return
        }
    }

    @Test func errorComesAfterBufferedElementsAndOnlyOnce() {
        var machine = PumpStateMachine<Int>(capacity: 4, overflow: .backpressure)
        _ = machine.received(1)
        #expect(machine.upstreamFinished(TestError()) == nil)
        guard case .event(.element(1), _) = machine.next() else {
            Issue.record("expected 1")
            return
        }
        guard case .event(.finished(let error?), _) = machine.next(), error is TestError else {
            Issue.record("expected error")
            return
        }
        guard case .event(.finished(nil), _) = machine.next() else {
            Issue.record("then plain end")
            return
        }
    }

    @Test func staleTicksAreIgnored() {
        var machine = PumpStateMachine<Int>(capacity: 1, overflow: .backpressure)
        let old = machine.newWait()
        _ = machine.newWait()
        #expect(machine.tick(old) == nil)
        guard case .suspend = machine.next() else {
            Issue.record("a stale tick must not wake the consumer")
            return
        }
    }
}
