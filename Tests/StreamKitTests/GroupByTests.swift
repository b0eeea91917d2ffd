import AsyncAlgorithms
import Testing

@testable import StreamKit

@Suite(.timeLimit(.minutes(1))) struct GroupByTests {
    @Test func eachKeyGetsItsElementsInOrder() async throws {
        let groups = (0..<300).async.groupBy(maxSubstreams: 3) { $0 % 3 }
        let results = try await withThrowingTaskGroup(of: (Int, [Int]).self) { group in
            for try await sub in groups {
                group.addTask { (sub.key, try await sub.collect()) }
            }
            return try await group.reduce(into: [Int: [Int]]()) { $0[$1.0] = $1.1 }
        }
        #expect(results.count == 3)
        for key in 0..<3 { #expect(results[key] == (0..<300).filter { $0 % 3 == key }) }
    }

    @Test func tooManyKeysFailsWithAClearError() async throws {
        await #expect(throws: StreamKitError.tooManySubstreams(max: 2)) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for try await sub in (0..<10).async.groupBy(maxSubstreams: 2, key: { $0 }) {
                    group.addTask { for try await _ in sub {} }
                }
                try await group.waitForAll()
            }
        }
    }

    @Test func aFullSubstreamHoldsBackTheUpstream() async throws {
        let probe = Probe()
        var outer = ProbedSequence(count: 100, probe: probe).groupBy(maxSubstreams: 2, bufferSize: 3) { $0 % 2 }
            .makeAsyncIterator()
        let evens = try await outer.next()!
        let odds = try await outer.next()!
        #expect(evens.key == 0 && odds.key == 1)
        for _ in 0..<1_000 { await Task.yield() }
        // Nobody reads the sub-streams: each holds 3, plus one element held by the reader.
        #expect(probe.pulled <= 3 + 3 + 1)
        async let evenAll = evens.collect()
        async let oddAll = odds.collect()
        #expect(try await evenAll == (0..<100).filter { $0 % 2 == 0 })
        #expect(try await oddAll == (0..<100).filter { $0 % 2 == 1 })
    }

    @Test func upstreamErrorReachesSubstreamsAfterTheirElements() async throws {
        let probe = Probe()
        var outer = ProbedSequence(count: 10, probe: probe, failAt: 4).groupBy(maxSubstreams: 4) { $0 % 2 }
            .makeAsyncIterator()
        let evens = try await outer.next()!
        let odds = try await outer.next()!
        var evenGot: [Int] = []
        await #expect(throws: TestError(tag: 4)) { for try await n in evens { evenGot.append(n) } }
        var oddGot: [Int] = []
        await #expect(throws: TestError(tag: 4)) { for try await n in odds { oddGot.append(n) } }
        #expect(evenGot == [0, 2] && oddGot == [1, 3])
        await #expect(throws: TestError(tag: 4)) { _ = try await outer.next() }
    }

    @Test func stoppingEverythingCancelsTheUpstream() async throws {
        let probe = Probe()
        let consumer = Task {
            for try await sub in ProbedSequence(count: 100, probe: probe, hangAt: 3).groupBy(
                maxSubstreams: 4, key: { $0 % 2 })
            {
                _ = sub // sub-streams dropped unread
            }
        }
        #expect(await eventually { probe.pulled == 3 })
        consumer.cancel()
        _ = try? await consumer.value
        #expect(await eventually { probe.sawCancellation && probe.iteratorsAlive == 0 })
    }
}

@Suite struct GroupByStateMachineTests {
    @Test func newKeysAreAnnouncedAndRoutedOnce() {
        var machine = GroupByStateMachine<String, Int>(maxSubstreams: 2, bufferSize: 4)
        _ = machine.route(1, key: "a")
        _ = machine.route(2, key: "a")
        _ = machine.route(3, key: "b")
        guard case .deliver(.success(let first?)) = machine.nextSubstream(), first.key == "a" else {
            Issue.record("a first")
            return
        }
        guard case .deliver(.success(let second?)) = machine.nextSubstream(), second.key == "b" else {
            Issue.record("then b")
            return
        }
        guard case .deliver(.success(1), _) = machine.next(sub: first.id) else {
            Issue.record("1")
            return
        }
        guard case .deliver(.success(2), _) = machine.next(sub: first.id) else {
            Issue.record("2")
            return
        }
        let (_, failed) = machine.route(4, key: "c")
        #expect(failed)
    }
}
