import AsyncAlgorithms
import Testing

@testable import StreamKit

@Suite(.timeLimit(.minutes(1))) struct BasicOperatorTests {
    @Test func statefulMapCarriesStateAndCanEmitAtCompletion() async throws {
        let pairs = try await [1, 2, 3].async.statefulMap(
            initial: { 0 },
            { previous, value -> String in
                defer { previous = value }
                return "\(previous)->\(value)"
            }, onComplete: { last in "end:\(last)" }
        ).collect()
        #expect(pairs == ["0->1", "1->2", "2->3", "end:3"])
    }

    @Test func statefulMapStateIsFreshForEachIteration() async throws {
        let counted = [5, 6].async.statefulMap(initial: { 0 }) { count, _ -> Int in
            count += 1
            return count
        }
        #expect(try await counted.collect() == [1, 2])
        #expect(try await counted.collect() == [1, 2])
    }

    @Test func statefulMapConcatEmitsZeroOrMoreAndPullsLazily() async throws {
        let probe = Probe()
        var iterator = ProbedSequence(count: 10, probe: probe).statefulMapConcat(initial: { Set<Int>() }) {
            seen, n -> [Int] in
            let key = n % 3
            return seen.insert(key).inserted ? [n, n] : []
        }.makeAsyncIterator()
        #expect(try await iterator.next() == 0)
        #expect(probe.pulled == 1)
        var rest: [Int] = []
        while let n = try await iterator.next() { rest.append(n) }
        #expect(rest == [0, 1, 1, 2, 2])
    }

    @Test func scanEmitsTheInitialValueFirstLikeAkka() async throws {
        #expect(try await (1...5).async.scan(1, *).collect() == [1, 1, 2, 6, 24, 120])
        #expect(try await [Int]().async.scan(7, +).collect() == [7])
    }

    @Test func scanPassesAnErrorAfterTheAccumulationsBeforeIt() async throws {
        var got: [Int] = []
        await #expect(throws: TestError(tag: 2)) {
            for try await n in ProbedSequence(count: 5, probe: Probe(), failAt: 2).scan(0, +) { got.append(n) }
        }
        #expect(got == [0, 0, 1])
    }

    @Test func foldEmitsOneResultAtTheEnd() async throws {
        #expect(try await (1...10).async.fold(0, +).collect() == [55])
        #expect(try await [Int]().async.fold(3, +).collect() == [3])
    }

    @Test func recoverEmitsAReplacementAndCompletes() async throws {
        let got = try await ProbedSequence(count: 5, probe: Probe(), failAt: 3).recover { _ in -1 }.collect()
        #expect(got == [0, 1, 2, -1])
    }

    @Test func recoverWithContinuesWithAnotherSequenceUpToMaxAttempts() async throws {
        let got = try await ProbedSequence(count: 5, probe: Probe(), failAt: 2)
            .recoverWith { _ in [10, 11].async }.collect()
        #expect(got == [0, 1, 10, 11])
        await #expect(throws: TestError(tag: 1)) {
            _ = try await ProbedSequence(count: 5, probe: Probe(), failAt: 1)
                .recoverWith(maxAttempts: 2) { _ in ProbedSequence(count: 5, probe: Probe(), failAt: 1) }.collect()
        }
    }

    @Test func mapErrorReplacesTheFailure() async throws {
        await #expect(throws: StreamKitError.aborted) {
            _ = try await ProbedSequence(count: 5, probe: Probe(), failAt: 1).mapError { _ in StreamKitError.aborted }
                .collect()
        }
    }

    @Test func batchAggregatesWhileTheConsumerIsSlowAndBoundsIt() async throws {
        let probe = Probe()
        var iterator = ProbedSequence(count: 20, probe: probe).batch(max: 5, seed: { [$0] }, aggregate: { $0 + [$1] })
            .makeAsyncIterator()
        let first = try await iterator.next()!
        for _ in 0..<1_000 { await Task.yield() }
        // The reader stops once 5 elements wait in the aggregate.
        #expect(probe.pulled <= first.count + 5 + 1)
        var all = first
        while let batch = try await iterator.next() {
            #expect(batch.count <= 5)
            all += batch
        }
        #expect(all == Array(0..<20))
    }

    @Test func conflateNeverHoldsTheUpstreamBack() async throws {
        let probe = Probe()
        var iterator = ProbedSequence(count: 1_000, probe: probe).conflate(seed: { $0 }, aggregate: { $0 + $1 })
            .makeAsyncIterator()
        var total = try await iterator.next()!
        #expect(await eventually { probe.pulled == 1_000 })
        while let sum = try await iterator.next() { total += sum }
        #expect(total == (0..<1_000).reduce(0, +))
    }

    @Test func batchErrorArrivesAfterTheLastAggregate() async throws {
        var all: [Int] = []
        await #expect(throws: TestError(tag: 7)) {
            for try await batch in ProbedSequence(count: 10, probe: Probe(), failAt: 7).batch(
                max: 100, seed: { [$0] }, aggregate: { $0 + [$1] })
            {
                all += batch
            }
        }
        #expect(all == Array(0..<7))
    }

    @Test func batchCancellationCancelsTheUpstream() async throws {
        let probe = Probe()
        let consumer = Task {
            for try await _ in ProbedSequence(count: 10, probe: probe, hangAt: 2).conflate({ $1 }) {}
        }
        #expect(await eventually { probe.pulled == 2 })
        consumer.cancel()
        _ = try? await consumer.value
        #expect(await eventually { probe.sawCancellation && probe.iteratorsAlive == 0 })
    }
}
