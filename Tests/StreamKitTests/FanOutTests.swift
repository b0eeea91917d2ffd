import AsyncAlgorithms
import Testing

@testable import StreamKit

@Suite(.timeLimit(.minutes(1))) struct FanOutTests {
    @Test func broadcastGivesEveryBranchEveryElementInOrder() async throws {
        let branches = (0..<200).async.broadcast(count: 3, bufferSize: 4)
        let results = try await withThrowingTaskGroup(of: [Int].self) { group in
            for branch in branches { group.addTask { try await branch.collect() } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.count == 3)
        for result in results { #expect(result == Array(0..<200)) }
    }

    @Test func broadcastIsPacedByTheSlowestBranch() async throws {
        let probe = Probe()
        let branches = ProbedSequence(count: 50, probe: probe).broadcast(count: 2, bufferSize: 4)
        var fast = branches[0].makeAsyncIterator()
        var slow = branches[1].makeAsyncIterator()
        for expected in 0..<4 { #expect(try await fast.next() == expected) }
        for _ in 0..<1_000 { await Task.yield() }
        // The slow branch has read nothing: its buffer (4) holds the producer back.
        #expect(probe.pulled <= 5)
        var fastRest: [Int] = []
        let fastTask = Task { [fast] in
            var fast = fast
            var all: [Int] = []
            while let n = try await fast.next() { all.append(n) }
            return all
        }
        var slowAll: [Int] = []
        while let n = try await slow.next() { slowAll.append(n) }
        fastRest = try await fastTask.value
        #expect(slowAll == Array(0..<50))
        #expect(fastRest == Array(4..<50))
    }

    @Test func aDroppedBranchDoesNotHoldTheOthersBack() async throws {
        var branches = (0..<100).async.broadcast(count: 2, bufferSize: 2)
        let kept = branches.removeFirst()
        branches.removeAll() // the other branch is gone without ever being iterated
        #expect(try await kept.collect() == Array(0..<100))
    }

    @Test func upstreamErrorReachesEveryBranchAfterItsElements() async throws {
        let probe = Probe()
        let branches = ProbedSequence(count: 10, probe: probe, failAt: 3).broadcast(count: 2)
        for branch in branches {
            var got: [Int] = []
            await #expect(throws: TestError(tag: 3)) {
                for try await n in branch { got.append(n) }
            }
            #expect(got == [0, 1, 2])
        }
    }

    @Test func cancellingEveryBranchCancelsTheUpstream() async throws {
        let probe = Probe()
        let branches = ProbedSequence(count: 100, probe: probe, hangAt: 1).broadcast(count: 2)
        let consumers = branches.map { branch in Task { for try await _ in branch {} } }
        #expect(await eventually { probe.pulled == 1 })
        for consumer in consumers { consumer.cancel() }
        for consumer in consumers { _ = try? await consumer.value }
        #expect(await eventually { probe.sawCancellation && probe.iteratorsAlive == 0 })
    }

    @Test func aBranchIteratesOnlyOnce() async throws {
        let branch = (0..<3).async.broadcast(count: 1)[0]
        _ = branch.makeAsyncIterator()
        await #expect(throws: StreamKitError.self) {
            for try await _ in branch {}
        }
    }

    @Test func partitionRoutesEachElementToOneBranch() async throws {
        let branches = (0..<100).async.partition(into: 3, bufferSize: 2) { $0 % 3 }
        let results = try await withThrowingTaskGroup(of: (Int, [Int]).self) { group in
            for branch in branches { group.addTask { (branch.index, try await branch.collect()) } }
            return try await group.reduce(into: [Int: [Int]]()) { $0[$1.0] = $1.1 }
        }
        for index in 0..<3 { #expect(results[index] == (0..<100).filter { $0 % 3 == index }) }
    }

    @Test func partitionFailsOnAnIndexOutOfRange() async throws {
        let branches = (0..<10).async.partition(into: 2) { $0 == 5 ? 7 : $0 % 2 }
        let errors = await withTaskGroup(of: (any Error)?.self) { group in
            for branch in branches {
                group.addTask {
                    do {
                        for try await _ in branch {}
                        return nil
                    } catch { return error }
                }
            }
            return await group.reduce(into: [(any Error)?]()) { $0.append($1) }
        }
        for error in errors {
            #expect(error as? StreamKitError == .partitionIndexOutOfRange(index: 7, count: 2))
        }
    }

    @Test func balanceSpreadsWorkAndLosesNothing() async throws {
        let branches = (0..<1_000).async.balance(into: 4, bufferSize: 8)
        let results = try await withThrowingTaskGroup(of: [Int].self) { group in
            for branch in branches { group.addTask { try await branch.collect() } }
            return try await group.reduce(into: [[Int]]()) { $0.append($1) }
        }
        let all = results.flatMap { $0 }
        #expect(all.sorted() == Array(0..<1_000))
        // Each worker sees its share in upstream order.
        for result in results { #expect(result == result.sorted()) }
    }
}

@Suite struct FanOutStateMachineTests {
    @Test func broadcastReaderWaitsForTheFullestBranch() {
        var machine = FanOutStateMachine<Int>(branches: 2, bufferSize: 1, routing: .broadcast)
        guard case .pull = machine.readerWantsToPull() else {
            Issue.record("empty: may pull")
            return
        }
        _ = machine.route(1)
        guard case .suspend = machine.readerWantsToPull() else {
            Issue.record("both full: must wait")
            return
        }
        guard case .deliver(.success(1), _) = machine.next(branch: 0) else {
            Issue.record("branch 0 gets 1")
            return
        }
        guard case .suspend = machine.readerWantsToPull() else {
            Issue.record("branch 1 still full")
            return
        }
        _ = machine.cancel(branch: 1)
        guard case .pull = machine.readerWantsToPull() else {
            Issue.record("cancelled branch no longer counts")
            return
        }
    }

    @Test func partitionHoldsAnElementForAFullBranchAndReleasesItFirst() {
        var machine = FanOutStateMachine<Int>(branches: 2, bufferSize: 1, routing: .partition({ _ in 0 }))
        _ = machine.route(1)
        _ = machine.route(2) // branch 0 full: held
        guard case .suspend = machine.readerWantsToPull() else {
            Issue.record("held element blocks the reader")
            return
        }
        guard case .deliver(.success(1), _) = machine.next(branch: 0) else {
            Issue.record("1 first")
            return
        }
        // Room again: the held element must go before anything new is pulled.
        guard case .release = machine.readerWantsToPull() else {
            Issue.record("expected release")
            return
        }
        _ = machine.releaseHeld()
        guard case .deliver(.success(2), _) = machine.next(branch: 0) else {
            Issue.record("then 2")
            return
        }
    }

    @Test func balanceHandsToAWaitingBranchFirst() {
        var machine = FanOutStateMachine<Int>(branches: 2, bufferSize: 4, routing: .balance)
        _ = machine.route(1)
        guard case .deliver(.success(1), _) = machine.next(branch: 1) else {
            Issue.record("any branch takes from the shared queue")
            return
        }
        guard case .suspend = machine.next(branch: 0) else {
            Issue.record("queue empty")
            return
        }
    }
}
