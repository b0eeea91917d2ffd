import Testing

@testable import ReactiveKafka

/// A run of records for the buffer tests: `records` records of `bytes` bytes in total.
private struct TestChunk: BufferedChunk, Equatable {
    let topicPartition: TopicPartition
    let byteCount: Int
    let recordCount: Int
    /// Distinguishes chunks so tests can check order.
    let tag: Int

    init(_ partition: Int32, bytes: Int, records: Int = 1, tag: Int = 0) {
        self.topicPartition = TopicPartition("t", partition)
        self.byteCount = bytes
        self.recordCount = records
        self.tag = tag
    }
}

@Suite struct ConsumerBufferStateMachineTests {
    private typealias Buffer = ConsumerBufferStateMachine<TestChunk>

    @Test func thresholdsAreHalfAndQuarterOfTheBudget() {
        let buffer = Buffer(maxBufferedBytes: 1000)
        #expect(buffer.pauseThreshold == 500)
        #expect(buffer.resumeThreshold == 250)
    }

    @Test func pausesExactlyWhenCrossingThePauseThreshold() {
        var buffer = Buffer(maxBufferedBytes: 1000)
        #expect(buffer.append(TestChunk(0, bytes: 200)) == .none)
        #expect(buffer.append(TestChunk(1, bytes: 299)) == .none)
        #expect(!buffer.isPaused)
        #expect(buffer.bufferedBytes == 499)
        #expect(buffer.append(TestChunk(0, bytes: 1)) == .pauseAll)
        #expect(buffer.isPaused)
        #expect(buffer.bufferedBytes == 500)
    }

    @Test func doesNotPauseAgainWhileAlreadyPaused() {
        var buffer = Buffer(maxBufferedBytes: 1000)
        #expect(buffer.append(TestChunk(0, bytes: 600)) == .pauseAll)
        #expect(buffer.append(TestChunk(0, bytes: 600)) == .none)
        #expect(buffer.append(TestChunk(1, bytes: 10)) == .none)
        #expect(buffer.isPaused)
        #expect(buffer.bufferedBytes == 1210)
    }

    @Test func resumesOnlyOnceDrainedToTheResumeThreshold() {
        var buffer = Buffer(maxBufferedBytes: 1000) // pause at 500, resume at 250
        _ = buffer.append(TestChunk(0, bytes: 200, tag: 1))
        _ = buffer.append(TestChunk(0, bytes: 200, tag: 2))
        _ = buffer.append(TestChunk(0, bytes: 100, tag: 3))
        #expect(buffer.isPaused)

        // 300 bytes left: still above the resume threshold.
        let first = buffer.take(maxRecords: 1)
        #expect(first.taken.map(\.tag) == [1])
        #expect(first.flowControl == .none)
        #expect(buffer.isPaused)

        // 100 bytes left: resume, once.
        let second = buffer.take(maxRecords: 1)
        #expect(second.taken.map(\.tag) == [2])
        #expect(second.flowControl == .resumeAll)
        #expect(!buffer.isPaused)

        let third = buffer.take(maxRecords: 1)
        #expect(third.taken.map(\.tag) == [3])
        #expect(third.flowControl == .none)
        #expect(buffer.isEmpty)
        #expect(buffer.bufferedBytes == 0)
        #expect(buffer.bufferedRecords == 0)
    }

    @Test func takeWithoutPauseNeverResumes() {
        var buffer = Buffer(maxBufferedBytes: 1000)
        _ = buffer.append(TestChunk(0, bytes: 10))
        #expect(buffer.take(maxRecords: 10).flowControl == .none)
    }

    @Test func pausesAgainAfterResumingWhenTheBufferRefills() {
        var buffer = Buffer(maxBufferedBytes: 1000)
        #expect(buffer.append(TestChunk(0, bytes: 500)) == .pauseAll)
        #expect(buffer.take(maxRecords: 1).flowControl == .resumeAll)
        #expect(buffer.append(TestChunk(0, bytes: 499)) == .none)
        #expect(buffer.append(TestChunk(0, bytes: 1)) == .pauseAll)
    }

    @Test func takeTakesWholeChunksOldestFirst() {
        var buffer = Buffer(maxBufferedBytes: 1_000_000)
        _ = buffer.append(TestChunk(0, bytes: 30, records: 3, tag: 1))
        _ = buffer.append(TestChunk(1, bytes: 40, records: 4, tag: 2))
        _ = buffer.append(TestChunk(0, bytes: 50, records: 5, tag: 3))
        #expect(buffer.bufferedRecords == 12)

        // 5 records asked: the first chunk (3) is not enough, the second completes it; chunks are never split.
        let taken = buffer.take(maxRecords: 5)
        #expect(taken.taken.map(\.tag) == [1, 2])
        #expect(buffer.bufferedRecords == 5)
        #expect(buffer.bufferedBytes == 50)

        let rest = buffer.take(maxRecords: 100)
        #expect(rest.taken.map(\.tag) == [3])
        #expect(buffer.isEmpty)
        #expect(buffer.take(maxRecords: 100).taken.isEmpty)
    }

    @Test func removeDropsOnlyThePartitionsGiven() {
        var buffer = Buffer(maxBufferedBytes: 1_000_000)
        _ = buffer.append(TestChunk(0, bytes: 10, records: 1, tag: 1))
        _ = buffer.append(TestChunk(1, bytes: 20, records: 2, tag: 2))
        _ = buffer.append(TestChunk(2, bytes: 30, records: 3, tag: 3))
        _ = buffer.append(TestChunk(1, bytes: 40, records: 4, tag: 4))
        _ = buffer.append(TestChunk(0, bytes: 50, records: 5, tag: 5))

        #expect(buffer.remove(partitions: [TopicPartition("t", 1), TopicPartition("other", 0)]) == .none)
        #expect(buffer.chunks.map(\.tag) == [1, 3, 5])
        #expect(buffer.bufferedBytes == 90)
        #expect(buffer.bufferedRecords == 9)
        #expect(buffer.remove(partitions: []) == .none)
        #expect(buffer.chunks.map(\.tag) == [1, 3, 5])
    }

    @Test func removingRevokedPartitionsCanResume() {
        var buffer = Buffer(maxBufferedBytes: 1000)
        _ = buffer.append(TestChunk(0, bytes: 100))
        #expect(buffer.append(TestChunk(1, bytes: 450)) == .pauseAll)
        #expect(buffer.remove(partitions: [TopicPartition("t", 1)]) == .resumeAll)
        #expect(!buffer.isPaused)
        #expect(buffer.bufferedBytes == 100)
    }

    @Test func removingTooLittleKeepsPaused() {
        var buffer = Buffer(maxBufferedBytes: 1000)
        _ = buffer.append(TestChunk(0, bytes: 300))
        #expect(buffer.append(TestChunk(1, bytes: 300)) == .pauseAll)
        #expect(buffer.remove(partitions: [TopicPartition("t", 1)]) == .none)
        #expect(buffer.isPaused)
    }

    @Test func highWaterBytesRecordsThePeak() {
        var buffer = Buffer(maxBufferedBytes: 1_000_000)
        _ = buffer.append(TestChunk(0, bytes: 100))
        _ = buffer.append(TestChunk(0, bytes: 200))
        _ = buffer.take(maxRecords: 2)
        _ = buffer.append(TestChunk(0, bytes: 50))
        #expect(buffer.bufferedBytes == 50)
        #expect(buffer.highWaterBytes == 300)
    }

    @Test func newAssignmentWhilePausedIsPausedToo() {
        var buffer = Buffer(maxBufferedBytes: 1000)
        #expect(buffer.flowControlForNewAssignment() == .none)
        _ = buffer.append(TestChunk(0, bytes: 500))
        #expect(buffer.flowControlForNewAssignment() == .pauseAll)
        _ = buffer.take(maxRecords: 1)
        #expect(buffer.flowControlForNewAssignment() == .none)
    }

    @Test func tinyBudgetStillPausesAndResumes() {
        var buffer = Buffer(maxBufferedBytes: 1) // pause at 1 byte, resume at 0
        #expect(buffer.append(TestChunk(0, bytes: 1)) == .pauseAll)
        #expect(buffer.take(maxRecords: 1).flowControl == .resumeAll)
    }

    @Test func removeAllEmptiesTheBuffer() {
        var buffer = Buffer(maxBufferedBytes: 1000)
        _ = buffer.append(TestChunk(0, bytes: 100, records: 3))
        buffer.removeAll()
        #expect(buffer.isEmpty)
        #expect(buffer.bufferedBytes == 0)
        #expect(buffer.bufferedRecords == 0)
    }

    // MARK: Records held downstream (countsHeldBytes)

    @Test func takenRecordsKeepCountingUntilTheirBatchIsReleased() {
        var buffer = Buffer(maxBufferedBytes: 1000, countsHeldBytes: true)
        _ = buffer.append(TestChunk(0, bytes: 300))
        let (taken, flow) = buffer.take(maxRecords: 10)
        #expect(taken.count == 1 && flow == .none)
        #expect(buffer.bufferedBytes == 0)
        #expect(buffer.heldBytes == 300)
        #expect(buffer.liveBytes == 300)
        #expect(buffer.room == 200)
        // What downstream holds counts towards the pause.
        #expect(buffer.append(TestChunk(1, bytes: 200)) == .pauseAll)
        #expect(buffer.highWaterBytes == 500)
        _ = buffer.released(bytes: 0)
        #expect(buffer.heldBytes == 300)
    }

    @Test func takingEverythingDoesNotResumeWhileDownstreamHoldsIt() {
        var buffer = Buffer(maxBufferedBytes: 1000, countsHeldBytes: true)
        _ = buffer.append(TestChunk(0, bytes: 600))
        #expect(buffer.isPaused)
        let (_, flow) = buffer.take(maxRecords: 10)
        #expect(flow == .none, "the records left the buffer but their batch is still alive downstream")
        #expect(buffer.isPaused)
        #expect(buffer.released(bytes: 300) == .none, "600 → 300 live: above the resume threshold (250)")
        #expect(buffer.released(bytes: 300) == .resumeAll)
        #expect(buffer.heldBytes == 0 && !buffer.isPaused)
    }

    @Test func droppedRecordsCountUntilTheirBatchIsReleasedToo() {
        var buffer = Buffer(maxBufferedBytes: 1000, countsHeldBytes: true)
        _ = buffer.append(TestChunk(0, bytes: 100))
        _ = buffer.append(TestChunk(1, bytes: 100))
        _ = buffer.remove(partitions: [TopicPartition("t", 0)])
        #expect(buffer.bufferedBytes == 100 && buffer.heldBytes == 100)
        buffer.removeAll()
        #expect(buffer.bufferedBytes == 0 && buffer.heldBytes == 200)
        _ = buffer.released(bytes: 200)
        #expect(buffer.liveBytes == 0)
    }

    @Test func aReleaseNeverDrivesHeldBytesBelowZero() {
        var buffer = Buffer(maxBufferedBytes: 1000, countsHeldBytes: true)
        _ = buffer.append(TestChunk(0, bytes: 100))
        _ = buffer.take(maxRecords: 1)
        _ = buffer.released(bytes: 500)
        #expect(buffer.heldBytes == 0)
    }

    @Test func withoutHeldCountingATakeFreesTheBudgetAtOnce() {
        var buffer = Buffer(maxBufferedBytes: 1000)
        _ = buffer.append(TestChunk(0, bytes: 600))
        let (_, flow) = buffer.take(maxRecords: 10)
        #expect(flow == .resumeAll)
        #expect(buffer.heldBytes == 0)
    }
}
