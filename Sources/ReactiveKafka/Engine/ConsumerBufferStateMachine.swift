import DequeModule

/// Something the consumer buffers: a run of records from one partition.
protocol BufferedChunk {
    var topicPartition: TopicPartition { get }
    var byteCount: Int { get }
    var recordCount: Int { get }
}

/// The consumer engine's read-ahead buffer, as a pure state machine (no I/O).
///
/// Records fetched from librdkafka wait here until a source asks for them:
/// a whole-consumer source takes the oldest chunks of any partition, a
/// partition's sub-stream takes only its partition's chunks. Per-partition
/// order is always kept.
///
/// The buffer enforces the byte budget: when it holds more than
/// `pauseThreshold` bytes it asks for every assigned partition to be paused
/// (librdkafka then stops fetching), and once it drains below
/// `resumeThreshold` it asks for them to be resumed. So memory stays bounded
/// whatever the partition count, while the consumer keeps polling (group
/// membership stays alive). With per-partition readers
/// (``perPartitionBudget`` set), a partition holding more than its share is
/// paused on its own until its reader drains it, so one slow sub-stream does
/// not stall the others. Records of revoked partitions are removed and never
/// handed out.
///
/// With ``countsHeldBytes`` (the engine's setting), records keep counting
/// against the budget after they leave the buffer, until the application lets
/// go of them: emitted records point into their fetched batch and keep all of it
/// alive, wherever downstream holds them (a flow in flight, a `buffer`, a
/// `groupedWithin`). Their bytes move to ``heldBytes`` when taken (or dropped)
/// and leave it at ``released(bytes:)``, when the batch is freed. So the records
/// the engine fetched and the application has not let go of exceed the pause
/// threshold by at most one fetch: a stage downstream that holds more than that
/// waits for records until it releases some.
struct ConsumerBufferStateMachine<Chunk: BufferedChunk> {
    /// What the engine must do with librdkafka after a transition.
    enum FlowControl: Equatable {
        case none
        /// Pause every assigned partition.
        case pauseAll
        /// Resume every assigned partition (except those in ``pausedPartitions``).
        case resumeAll
        /// ``pausedPartitions`` changed: pause or resume the difference.
        case partitionsChanged
    }

    private struct PartitionQueue {
        var chunks: Deque<(sequence: UInt64, chunk: Chunk)> = []
        var bytes = 0
    }

    /// Arrival order over all partitions; entries whose chunk was taken by a
    /// partition reader (or removed) are skipped lazily.
    private var arrivals: Deque<(sequence: UInt64, partition: TopicPartition)> = []
    private var queues: [TopicPartition: PartitionQueue] = [:]
    private var nextSequence: UInt64 = 0
    /// Chunks buffered over all partitions (the arrival log's live entries).
    private var liveChunkCount = 0
    private(set) var bufferedBytes = 0
    private(set) var bufferedRecords = 0
    private(set) var isPaused = false
    /// Partitions paused because they hold more than ``perPartitionBudget`` bytes.
    private(set) var pausedPartitions: Set<TopicPartition> = []
    /// Set when sources read per partition: the bytes one partition may hold before it is paused alone.
    var perPartitionBudget: Int?
    /// Bytes of records taken out (or dropped) whose fetched batch is still alive (``countsHeldBytes``).
    private(set) var heldBytes = 0
    /// The largest ``liveBytes`` ever reached, for metrics and tests.
    private(set) var highWaterBytes = 0
    let pauseThreshold: Int
    let resumeThreshold: Int
    /// Records count against the budget until their batch is released, not only while buffered.
    let countsHeldBytes: Bool

    init(maxBufferedBytes: Int, countsHeldBytes: Bool = false) {
        // Half the budget for this buffer: librdkafka's own prefetch is given the other half.
        self.pauseThreshold = max(1, maxBufferedBytes / 2)
        self.resumeThreshold = max(0, maxBufferedBytes / 4)
        self.countsHeldBytes = countsHeldBytes
    }

    /// What counts against the budget: records buffered, and those held downstream.
    var liveBytes: Int { bufferedBytes + heldBytes }

    /// Room left before the pause threshold.
    var room: Int { pauseThreshold - liveBytes }

    var isEmpty: Bool { bufferedRecords == 0 }

    /// The buffered chunks, oldest first (for tests and metrics).
    var chunks: [Chunk] {
        var result: [Chunk] = []
        var copy = self
        while let next = copy.popOldest() { result.append(next) }
        return result
    }

    /// Whether `partition` has records buffered.
    func hasRecords(of partition: TopicPartition) -> Bool {
        !(queues[partition]?.chunks.isEmpty ?? true)
    }

    /// Adds fetched records.
    mutating func append(_ chunk: Chunk) -> FlowControl {
        let key = chunk.topicPartition
        nextSequence &+= 1
        arrivals.append((nextSequence, key))
        queues[key, default: PartitionQueue()].chunks.append((nextSequence, chunk))
        queues[key]!.bytes += chunk.byteCount
        liveChunkCount += 1
        bufferedBytes += chunk.byteCount
        bufferedRecords += chunk.recordCount
        highWaterBytes = max(highWaterBytes, liveBytes)
        if !isPaused && liveBytes >= pauseThreshold {
            isPaused = true
            return .pauseAll
        }
        if let budget = perPartitionBudget, queues[key]!.bytes >= budget, !pausedPartitions.contains(key) {
            pausedPartitions.insert(key)
            return .partitionsChanged
        }
        return .none
    }

    /// Takes whole chunks of any partition, oldest first, until at least
    /// `maxRecords` records are taken or the buffer is empty.
    mutating func take(maxRecords: Int) -> (taken: [Chunk], flowControl: FlowControl) {
        var taken: [Chunk] = []
        var records = 0
        var partitionsChanged = false
        while records < maxRecords, let chunk = popOldest() {
            taken.append(chunk)
            records += chunk.recordCount
            partitionsChanged = account(taken: chunk) || partitionsChanged
        }
        return (taken, resumeIfDrained(partitionsChanged: partitionsChanged))
    }

    /// Takes whole chunks of `partition` only, oldest first, until at least `maxRecords` records are taken.
    mutating func take(maxRecords: Int, of partition: TopicPartition) -> (taken: [Chunk], flowControl: FlowControl) {
        var taken: [Chunk] = []
        var records = 0
        var partitionsChanged = false
        while records < maxRecords, let entry = queues[partition]?.chunks.popFirst() {
            taken.append(entry.chunk)
            records += entry.chunk.recordCount
            partitionsChanged = account(taken: entry.chunk) || partitionsChanged
        }
        if queues[partition]?.chunks.isEmpty == true { queues[partition] = nil }
        compactArrivals()
        return (taken, resumeIfDrained(partitionsChanged: partitionsChanged))
    }

    /// Drops every buffered record of `partitions` (revoked, lost, or rewound).
    mutating func remove(partitions: Set<TopicPartition>) -> FlowControl {
        guard !partitions.isEmpty else { return .none }
        var partitionsChanged = false
        for partition in partitions {
            if let queue = queues.removeValue(forKey: partition) {
                bufferedBytes -= queue.bytes
                if countsHeldBytes { heldBytes += queue.bytes }
                bufferedRecords -= queue.chunks.reduce(0) { $0 + $1.chunk.recordCount }
                liveChunkCount -= queue.chunks.count
            }
            if pausedPartitions.remove(partition) != nil { partitionsChanged = true }
        }
        compactArrivals()
        return resumeIfDrained(partitionsChanged: partitionsChanged)
    }

    /// Drops everything (the consumer stops).
    mutating func removeAll() {
        if countsHeldBytes { heldBytes += bufferedBytes }
        arrivals.removeAll()
        queues.removeAll()
        bufferedBytes = 0
        bufferedRecords = 0
        liveChunkCount = 0
        pausedPartitions.removeAll()
    }

    /// Batches holding `bytes` of records that left the buffer were freed: the application let go.
    mutating func released(bytes: Int) -> FlowControl {
        heldBytes = max(0, heldBytes - bytes)
        return resumeIfDrained(partitionsChanged: false)
    }

    /// Partitions newly assigned start unpaused in librdkafka; if the buffer is
    /// over budget they must be paused too.
    func flowControlForNewAssignment() -> FlowControl {
        isPaused ? .pauseAll : .none
    }

    /// The oldest chunk of any partition, removed from its queue (totals are left to `account`).
    private mutating func popOldest() -> Chunk? {
        while let entry = arrivals.popFirst() {
            guard let front = queues[entry.partition]?.chunks.first, front.sequence == entry.sequence else { continue }
            queues[entry.partition]!.chunks.removeFirst()
            return front.chunk
        }
        return nil
    }

    /// Updates the totals for a chunk taken out; true if its partition's own pause lifted.
    private mutating func account(taken chunk: Chunk) -> Bool {
        bufferedBytes -= chunk.byteCount
        if countsHeldBytes { heldBytes += chunk.byteCount }
        bufferedRecords -= chunk.recordCount
        liveChunkCount -= 1
        let key = chunk.topicPartition
        guard var queue = queues[key] else { return false }
        queue.bytes -= chunk.byteCount
        if queue.chunks.isEmpty {
            queues[key] = nil
            // A partition paused on its own resumes once its reader has drained it.
            return pausedPartitions.remove(key) != nil
        }
        queues[key] = queue
        return false
    }

    /// Drops stale arrival entries (their chunk was taken by a partition reader or
    /// removed), so the arrival log stays about as long as the buffer.
    private mutating func compactArrivals() {
        func isStale(_ entry: (sequence: UInt64, partition: TopicPartition)) -> Bool {
            guard let front = queues[entry.partition]?.chunks.first else { return true }
            return entry.sequence < front.sequence
        }
        while let entry = arrivals.first, isStale(entry) { arrivals.removeFirst() }
        if arrivals.count > 64 + 2 * liveChunkCount {
            arrivals = Deque(arrivals.filter { !isStale($0) })
        }
    }

    private mutating func resumeIfDrained(partitionsChanged: Bool) -> FlowControl {
        if isPaused && liveBytes <= resumeThreshold {
            isPaused = false
            return .resumeAll
        }
        return partitionsChanged ? .partitionsChanged : .none
    }
}
