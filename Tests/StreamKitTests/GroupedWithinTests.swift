import AsyncAlgorithms
import Testing

@testable import StreamKit

@Suite(.timeLimit(.minutes(1))) struct GroupedWithinTests {
    @Test func countClosesGroupsAndTheLastPartialGroupIsEmitted() async throws {
        let groups = try await (0..<10).async.groupedWithin(count: 3, duration: .seconds(60), clock: ManualClock())
            .collect()
        #expect(groups == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]])
    }

    @Test func durationClosesAGroupWhileTheUpstreamIsQuiet() async throws {
        let clock = ManualClock()
        let (stream, input) = AsyncStream<Int>.makeStream()
        var iterator = stream.groupedWithin(count: 100, duration: .seconds(1), clock: clock).makeAsyncIterator()
        input.yield(1)
        let advancer = Task {
            await clock.waitForSleepers(count: 1)
            clock.advance(by: .seconds(1))
        }
        // Only the timer can close this group: the upstream stays quiet.
        #expect(try await iterator.next() == [1])
        await advancer.value
        input.yield(2)
        input.yield(3)
        input.finish()
        #expect(try await iterator.next() == [2, 3])
        #expect(try await iterator.next() == nil)
    }
    @Test func upstreamErrorFollowsTheGroupBeforeIt() async throws {
        let probe = Probe()
        var iterator = ProbedSequence(count: 10, probe: probe, failAt: 4)
            .groupedWithin(count: 3, duration: .seconds(60), clock: ManualClock()).makeAsyncIterator()
        #expect(try await iterator.next() == [0, 1, 2])
        #expect(try await iterator.next() == [3])
        await #expect(throws: TestError(tag: 4)) { _ = try await iterator.next() }
    }

    @Test func memoryIsBoundedByCount() async throws {
        let probe = Probe()
        var iterator = ProbedSequence(count: 1_000, probe: probe)
            .groupedWithin(count: 5, duration: .seconds(60), clock: ManualClock()).makeAsyncIterator()
        _ = try await iterator.next()
        for _ in 0..<1_000 { await Task.yield() }
        // One group emitted, at most one group buffered, one element waiting for room.
        #expect(probe.pulled <= 5 + 5 + 1)
    }

    @Test func weightedGroupsRespectTheWeight() async throws {
        let groups = try await [3, 3, 3, 5, 1, 9, 1].async
            .groupedWeightedWithin(weight: 6, duration: .seconds(60), clock: ManualClock()) { $0 }
            .collect()
        // An element heavier than the weight forms a group alone.
        #expect(groups == [[3, 3], [3], [5, 1], [9], [1]])
    }

    @Test func cancellingTheConsumerCancelsTheUpstream() async throws {
        let probe = Probe()
        let consumer = Task {
            for try await _ in ProbedSequence(count: 100, probe: probe, hangAt: 1)
                .groupedWithin(count: 10, duration: .seconds(60), clock: ManualClock())
            {}
        }
        #expect(await eventually { probe.pulled == 1 })
        consumer.cancel()
        _ = try? await consumer.value
        #expect(await eventually { probe.sawCancellation && probe.iteratorsAlive == 0 })
    }

    @Test func rejectsANonPositiveCount() async throws {
        await #expect(throws: StreamKitError.self) {
            for try await _ in (0..<3).async.groupedWithin(count: 0, duration: .seconds(1)) {}
        }
    }
}
