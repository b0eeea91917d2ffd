import Testing

@testable import ReactiveKafka

@Suite struct PartitionProgressTests {
    private func received(_ offsets: [Int64], start: Int64 = 0, done: [Range<Int64>] = []) -> PartitionProgress {
        var p = PartitionProgress(start: start, previouslyDone: done)
        for o in offsets { _ = p.received(o) }
        return p
    }

    @Test func committableIsTheFirstRecordNotCompleted() {
        var p = received(Array(0..<10))
        #expect(p.committable == 0)
        let v1 = p.complete(3)
        #expect(!v1)
        let v2 = p.complete(4)
        #expect(!v2)
        #expect(p.committable == 0)
        #expect(p.completedAbove == [3..<5])
        let v3 = p.complete(0)
        #expect(v3)
        #expect(p.committable == 1)
        p.complete(1)
        p.complete(2)
        #expect(p.committable == 5)
        #expect(p.completedAbove.isEmpty)
    }

    @Test func completingEverythingCommitsPastTheLastRecord() {
        var p = received([5, 6, 7], start: 5)
        for o in [7, 5, 6] as [Int64] { p.complete(o) }
        #expect(p.committable == 8)
        #expect(!p.hasPending)
    }

    @Test func offsetsThatAreNotRecordsCountAsDone() {
        // 11 and 12 are not records (transaction markers, compaction).
        var p = received([10, 13, 14], start: 10)
        p.complete(10)
        #expect(p.committable == 13)
        p.complete(14)
        #expect(p.completedAbove == [14..<15])
        p.complete(13)
        #expect(p.committable == 15)
    }

    @Test func aLongStretchOfNonRecordsWithNothingPendingStartsAfresh() {
        var p = received([0])
        p.complete(0)
        let v4 = p.received(1_000_000)
        #expect(v4)
        #expect(p.committable == 1_000_000)
        p.complete(1_000_000)
        #expect(p.committable == 1_000_001)
    }

    @Test func aLongStretchAboveAPendingRecordKeepsItPending() {
        var p = received([0, 10_000])
        p.complete(10_000)
        #expect(p.committable == 0)
        #expect(p.completedAbove == [1..<10_001])
        p.complete(0)
        #expect(p.committable == 10_001)
    }

    @Test func spansManyWordsAndDropsThemAsTheyComplete() {
        var p = received(Array(0..<1_000))
        for o in stride(from: 999, through: 1, by: -1) { p.complete(Int64(o)) }
        #expect(p.committable == 0)
        #expect(p.completedAbove == [1..<1_000])
        p.complete(0)
        #expect(p.committable == 1_000)
    }

    @Test func recordsAPreviousOwnerCompletedAreSkippedAndTheGapIsNot() {
        // Committed 100; 102..<105 and 107 were completed above the gap.
        var p = PartitionProgress(start: 100, previouslyDone: [102..<105, 107..<108])
        let v5 = p.received(100)
        #expect(v5)
        let v6 = p.received(101)
        #expect(v6)
        let v7 = p.received(102)
        #expect(!v7)
        let v8 = p.received(103)
        #expect(!v8)
        let v9 = p.received(104)
        #expect(!v9)
        let v10 = p.received(105)
        #expect(v10)
        let v11 = p.received(106)
        #expect(v11)
        let v12 = p.received(107)
        #expect(!v12)
        let v13 = p.received(108)
        #expect(v13)
        p.complete(100)
        p.complete(101)
        #expect(p.committable == 105)
        p.complete(105)
        p.complete(106)
        #expect(p.committable == 108)
    }

    @Test func duplicatesAndCompletionsOutsideTheRangeAreIgnored() {
        var p = received([0, 1, 2])
        let v14 = p.received(1)
        #expect(!v14)
        let v15 = p.complete(7)
        #expect(!v15)
        p.complete(0)
        let v16 = p.complete(0)
        #expect(!v16)
        #expect(p.committable == 1)
        #expect(p.isDone(0))
        #expect(!p.isDone(1))
        #expect(!p.isDone(3))
    }

    @Test func randomCompletionOrderAlwaysCommitsTheFirstGap() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<50 {
            let count = Int64.random(in: 1...300, using: &generator)
            var p = received(Array(0..<count))
            var done = Set<Int64>()
            for o in (0..<count).shuffled(using: &generator) {
                p.complete(o)
                done.insert(o)
                let firstGap = (0...count).first { !done.contains($0) }!
                #expect(p.committable == firstGap)
                let above = Set(p.completedAbove.flatMap { Array($0) })
                #expect(above == done.filter { $0 > firstGap })
            }
        }
    }
}
