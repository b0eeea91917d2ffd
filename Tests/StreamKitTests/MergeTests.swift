import AsyncAlgorithms
import Testing

@testable import StreamKit

@Suite(.timeLimit(.minutes(1))) struct MergeTests {
    @Test func mergesEveryElementKeepingEachUpstreamsOrder() async throws {
        let all = try await merge([(0..<100).async, (100..<200).async, (200..<300).async], bufferSize: 4).collect()
        #expect(all.sorted() == Array(0..<300))
        for range in [0..<100, 100..<200, 200..<300] {
            #expect(all.filter { range.contains($0) } == Array(range))
        }
    }

    @Test func anUpstreamErrorFailsTheMergeAndCancelsTheOthers() async throws {
        let probe = Probe()
        let failing = ProbedSequence(count: 10, probe: Probe(), failAt: 2)
        let hanging = ProbedSequence(count: 10, probe: probe, hangAt: 1)
        await #expect(throws: TestError(tag: 2)) {
            for try await _ in merge([failing, hanging]) {}
        }
        // Whether it was already hanging (then cancelled) or not yet started, the other upstream is released.
        #expect(await eventually { probe.iteratorsAlive == 0 })
    }

    @Test func backPressureBoundsWhatIsPulled() async throws {
        let probe = Probe()
        var iterator = merge(
            [ProbedSequence(count: 1_000, probe: probe), ProbedSequence(count: 1_000, probe: probe)], bufferSize: 4
        )
        .makeAsyncIterator()
        _ = try await iterator.next()
        for _ in 0..<1_000 { await Task.yield() }
        // One taken, four buffered, one waiting in each of the two producers.
        #expect(probe.pulled <= 1 + 4 + 2)
    }

    @Test func cancellingTheConsumerCancelsEveryUpstream() async throws {
        let probe = Probe()
        let consumer = Task {
            for try await _ in merge([
                ProbedSequence(count: 5, probe: probe, hangAt: 1), ProbedSequence(count: 5, probe: probe, hangAt: 1),
            ]) {}
        }
        #expect(await eventually { probe.pulled == 2 })
        consumer.cancel()
        _ = try? await consumer.value
        #expect(await eventually { probe.iteratorsAlive == 0 })
    }

    @Test func dynamicMergeTakesUpstreamsWhileRunningAndEndsAfterFinish() async throws {
        let hub = DynamicMerge<Int>(bufferSize: 2)
        hub.add((0..<50).async)
        var iterator = hub.elements.makeAsyncIterator()
        var got: [Int] = []
        for _ in 0..<10 { got.append(try await iterator.next()!) }
        hub.add((50..<100).async)
        hub.finish()
        while let n = try await iterator.next() { got.append(n) }
        #expect(got.sorted() == Array(0..<100))
    }
}
