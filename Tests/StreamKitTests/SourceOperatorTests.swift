import AsyncAlgorithms
import Foundation
import Testing

@testable import StreamKit

@Suite(.timeLimit(.minutes(1))) struct SourceOperatorTests {
    @Test func forwardedOperatorsKeepTheMaterializedValue() async throws {
        let source = Source((0..<20).async, materialized: 42)
            .map { $0 * 2 }
            .filter { $0 % 4 == 0 }
            .mapAsync(parallelism: 3) { $0 + 1 }
            .mapAsyncUnordered(parallelism: 2) { $0 }
            .buffer(size: 4, overflow: .backpressure)
            .throttle(cost: 1_000, per: .seconds(1), burst: 1_000)
            .groupedWithin(count: 100, duration: .seconds(5))
        #expect(source.materialized == 42)
        let groups = try await source.run(into: Sinks.collect([Int].self))
        #expect(groups.flatMap { $0 }.sorted() == [1, 5, 9, 13, 17, 21, 25, 29, 33, 37])
    }

    @Test func synchronousMapOnSourceStillAcceptsAsyncClosures() async throws {
        let doubled = try await Source.from([1, 2, 3]).map { n async -> Int in
            await Task.yield()
            return n * 2
        }.run(into: Sinks.collect(Int.self))
        #expect(doubled == [2, 4, 6])
    }

    @Test func factorialsAsInTheAkkaQuickStart() async throws {
        let factorials = try await Source.from(1...10).transform { $0.scan(1, *) }.run(into: Sinks.collect(Int.self))
        #expect(factorials == [1, 1, 2, 6, 24, 120, 720, 5_040, 40_320, 362_880, 3_628_800])
    }

    @Test func takeCompletesAfterCountWithoutPullingAgain() async throws {
        // An upstream that never finishes: take must not pull after its last element.
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
        for n in 1...5 { continuation.yield(n) }
        let pulls = PullCounter()
        let source = Source(
            stream.map { n -> Int in
                pulls.increment()
                return n
            }, materialized: "control"
        ).take(3)
        #expect(source.materialized == "control")
        #expect(try await source.run(into: Sinks.collect(Int.self)) == [1, 2, 3])
        #expect(pulls.value == 3)
        continuation.finish()
    }

    @Test func takeOfMoreThanThereAreOrOfNothing() async throws {
        #expect(try await Source.from([1, 2]).take(5).run(into: Sinks.collect(Int.self)) == [1, 2])
        #expect(try await Source.from([1, 2]).take(0).run(into: Sinks.collect(Int.self)) == [])
        #expect(try await Source.from([1, 2]).take(-1).run(into: Sinks.collect(Int.self)) == [])
        var iterator = [7].async.take(1).makeAsyncIterator()
        #expect(await iterator.next() == 7)
        #expect(await iterator.next() == nil)
        #expect(await iterator.next() == nil)
    }
}

/// Counts pulls from a test upstream.
private final class PullCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() {
        lock.lock()
        count += 1
        lock.unlock()
    }
    var value: Int {
        lock.lock()
        defer { lock.unlock() }
        return count
    }
}
