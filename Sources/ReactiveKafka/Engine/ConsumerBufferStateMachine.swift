import DequeModule

/// Something the consumer buffers: a run of records from one partition.
protocol BufferedChunk {
    var topicPartition: TopicPartition { get }
    var byteCount: Int { get }
    var recordCount: Int { get }
}

/// The consumer engine's read-ahead buffer, as a pure state machine (no I/O).
///
/// Records fetched from librdkafka wait here until a source asks for them.
/// The buffer enforces the byte budget: when it holds more than
/// `pauseThreshold` bytes it asks for every assigned partition to be paused
/// (librdkafka then stops fetching and drops what it prefetched for them), and
/// once it drains below `resumeThreshold` it asks for them to be resumed. So
/// memory stays bounded whatever the partition count, while the consumer keeps
/// polling (group membership stays alive). Records of revoked partitions are
/// removed and never handed out.
struct ConsumerBufferStateMachine<Chunk: BufferedChunk> {
    /// What the engine must do with librdkafka after a transition.
    enum FlowControl: Equatable {
        case none
        /// Pause every assigned partition.
        case pauseAll
        /// Resume every assigned partition.
        case resumeAll
    }

    private(set) var chunks: Deque<Chunk> = []
    private(set) var bufferedBytes = 0
    private(set) var bufferedRecords = 0
    private(set) var isPaused = false
    /// The largest `bufferedBytes` ever reached, for metrics and tests.
    private(set) var highWaterBytes = 0
    let pauseThreshold: Int
    let resumeThreshold: Int

    init(maxBufferedBytes: Int) {
        // Half the budget for this buffer: librdkafka's own prefetch is given the other half.
        self.pauseThreshold = max(1, maxBufferedBytes / 2)
        self.resumeThreshold = max(0, maxBufferedBytes / 4)
    }

    var isEmpty: Bool { chunks.isEmpty }

    /// Adds fetched records.
    mutating func append(_ chunk: Chunk) -> FlowControl {
        chunks.append(chunk)
        bufferedBytes += chunk.byteCount
        bufferedRecords += chunk.recordCount
        highWaterBytes = max(highWaterBytes, bufferedBytes)
        if !isPaused && bufferedBytes >= pauseThreshold {
            isPaused = true
            return .pauseAll
        }
        return .none
    }

    /// Takes whole chunks, oldest first, until at least `maxRecords` records
    /// are taken or the buffer is empty.
    mutating func take(maxRecords: Int) -> (taken: [Chunk], flowControl: FlowControl) {
        var taken: [Chunk] = []
        var records = 0
        while records < maxRecords, let chunk = chunks.popFirst() {
            taken.append(chunk)
            records += chunk.recordCount
            bufferedBytes -= chunk.byteCount
            bufferedRecords -= chunk.recordCount
        }
        return (taken, resumeIfDrained())
    }

    /// Drops every buffered record of `partitions` (revoked or lost).
    mutating func remove(partitions: Set<TopicPartition>) -> FlowControl {
        guard !partitions.isEmpty else { return .none }
        var kept: Deque<Chunk> = []
        for chunk in chunks {
            if partitions.contains(chunk.topicPartition) {
                bufferedBytes -= chunk.byteCount
                bufferedRecords -= chunk.recordCount
            } else {
                kept.append(chunk)
            }
        }
        chunks = kept
        return resumeIfDrained()
    }

    /// Drops everything (the consumer stops).
    mutating func removeAll() {
        chunks.removeAll()
        bufferedBytes = 0
        bufferedRecords = 0
    }

    /// Partitions newly assigned start unpaused in librdkafka; if the buffer is
    /// over budget they must be paused too.
    func flowControlForNewAssignment() -> FlowControl {
        isPaused ? .pauseAll : .none
    }

    private mutating func resumeIfDrained() -> FlowControl {
        if isPaused && bufferedBytes <= resumeThreshold {
            isPaused = false
            return .resumeAll
        }
        return .none
    }
}
