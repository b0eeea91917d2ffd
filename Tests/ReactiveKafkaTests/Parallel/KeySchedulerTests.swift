import Testing

@testable import ReactiveKafka

@Suite struct KeySchedulerTests {
    @Test func oneRecordPerKeyRunsAtATimeInOrder() {
        var s = KeyScheduler<Int>(maxConcurrency: 10)
        s.enqueue(1, lane: 0, key: 7)
        s.enqueue(2, lane: 0, key: 7)
        s.enqueue(3, lane: 0, key: 8)
        let (first, t1) = s.take()!
        let (second, t2) = s.take()!
        #expect([first, second] == [1, 3])
        let v1 = s.take()
        #expect(v1 == nil) // 2 waits for 1
        s.finished(t1)
        let (third, t3) = s.take()!
        #expect(third == 2)
        s.finished(t2)
        s.finished(t3)
        #expect(s.isIdle)
        #expect(s.inFlight == 0)
    }

    @Test func atMostMaxConcurrencyRun() {
        var s = KeyScheduler<Int>(maxConcurrency: 2)
        for i in 0..<5 { s.enqueue(i, lane: 0, key: i) }
        let a = s.take()!
        _ = s.take()!
        let v2 = s.take()
        #expect(v2 == nil)
        #expect(s.inFlight == 2)
        s.finished(a.1)
        let v3 = s.take()
        #expect(v3?.0 == 2)
    }

    @Test func unorderedRecordsRunInArrivalOrderAsSlotsFree() {
        var s = KeyScheduler<Int>(maxConcurrency: 3)
        for i in 0..<4 { s.enqueue(i, lane: 0, key: nil) }
        let taken = (0..<3).compactMap { _ in s.take() }
        #expect(taken.map(\.0) == [0, 1, 2])
        let v4 = s.take()
        #expect(v4 == nil)
        s.finished(taken[1].1)
        let v5 = s.take()
        #expect(v5?.0 == 3)
    }

    @Test func theSameKeyInAnotherLaneIsAnotherQueue() {
        var s = KeyScheduler<Int>(maxConcurrency: 10)
        s.enqueue(1, lane: 0, key: 7)
        s.enqueue(2, lane: 1, key: 7)
        let v6 = s.take()
        #expect(v6?.0 == 1)
        let v7 = s.take()
        #expect(v7?.0 == 2)
    }

    @Test func backlogCountsQueuedAndRunningPerLane() {
        var s = KeyScheduler<Int>(maxConcurrency: 1)
        s.enqueue(1, lane: 0, key: 1)
        s.enqueue(2, lane: 0, key: 2)
        s.enqueue(3, lane: 1, key: 1)
        #expect(s.backlog(0) == 2)
        let (_, ticket) = s.take()!
        #expect(s.running(0) == 1)
        #expect(s.backlog(0) == 2)
        s.finished(ticket)
        #expect(s.backlog(0) == 1)
        #expect(s.running(0) == 0)
    }

    @Test func removingALaneDropsItsQueuedRecordsAndKeepsItsRunningOnes() {
        var s = KeyScheduler<Int>(maxConcurrency: 10)
        s.enqueue(1, lane: 0, key: 1)
        s.enqueue(2, lane: 0, key: 1)
        s.enqueue(3, lane: 0, key: nil)
        s.enqueue(4, lane: 1, key: 1)
        let (first, ticket) = s.take()!
        #expect(first == 1)
        let v8 = s.removeLane(0)
        #expect(Set(v8) == [2, 3])
        #expect(s.backlog(0) == 1)
        let v9 = s.take()
        #expect(v9?.0 == 4)
        let v10 = s.take()
        #expect(v10 == nil)
        s.finished(ticket)
        #expect(s.backlog(0) == 0)
    }

    @Test func randomInterleavingKeepsEveryKeysOrder() {
        var s = KeyScheduler<(key: Int, seq: Int)>(maxConcurrency: 8)
        var next = [Int: Int]()
        var lastRun = [Int: Int]()
        var running: [((key: Int, seq: Int), KeyScheduler<(key: Int, seq: Int)>.Ticket)] = []
        var runningKeys = Set<Int>()
        for step in 0..<5_000 {
            if Bool.random() || step < 50 {
                let key = Int.random(in: 0..<20)
                s.enqueue((key, next[key, default: 0]), lane: 0, key: key)
                next[key, default: 0] += 1
            }
            while let taken = s.take() {
                #expect(!runningKeys.contains(taken.0.key))
                #expect(taken.0.seq == lastRun[taken.0.key, default: -1] + 1)
                lastRun[taken.0.key] = taken.0.seq
                runningKeys.insert(taken.0.key)
                running.append(taken)
            }
            #expect(running.count <= 8)
            if !running.isEmpty {
                let done = running.remove(at: Int.random(in: 0..<running.count))
                runningKeys.remove(done.0.key)
                s.finished(done.1)
            }
        }
    }
}
