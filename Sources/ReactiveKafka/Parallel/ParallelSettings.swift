/// The order in which a parallel source runs records.
public enum ParallelOrdering: Sendable, Hashable {
    /// One record per partition at a time, in offset order (a partitioned source's order).
    case partition
    /// One record per key at a time, in offset order; different keys run concurrently.
    /// Records without a key share one queue per partition.
    case key
    /// Any record may run as soon as a slot is free.
    case unordered
}

/// How a parallel source retries a record whose processing failed.
public struct ParallelRetry: Sendable, Hashable {
    /// Attempts in all, the first included (1: no retry).
    public var maxAttempts: Int
    /// The wait before the second attempt; each further wait doubles, up to `maxBackoff`.
    public var initialBackoff: Duration
    /// The longest wait between attempts.
    public var maxBackoff: Duration

    /// Retries with exponential backoff.
    public init(
        maxAttempts: Int = 3, initialBackoff: Duration = .milliseconds(100), maxBackoff: Duration = .seconds(10)
    ) {
        self.maxAttempts = maxAttempts
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
    }

    /// The wait after failed attempt `attempt` (1-based).
    func backoff(after attempt: Int) -> Duration {
        var wait = initialBackoff
        for _ in 1..<max(1, attempt) where wait < maxBackoff { wait *= 2 }
        return min(wait, maxBackoff)
    }
}

/// What a parallel source does with a record that failed its last attempt.
public enum ParallelFailurePolicy<Key: Sendable, Value: Sendable>: Sendable {
    /// Fail the stream with the record's error (what completed is committed first; the record is read again on restart).
    case failStream
    /// Send the record to `topic` with the error in its headers (`parallel.error`, and its origin in
    /// `parallel.topic`, `parallel.partition`, `parallel.offset`), then count it as processed.
    /// A record the dead-letter topic refuses fails the stream.
    case deadLetter(topic: String, producer: ProducerSettings<Key, Value>)
}

/// Settings of ``Consumer/parallelSource(_:subscription:parallel:onFailure:logger:process:)``.
public struct ParallelSettings: Sendable {
    /// The order records run in.
    public var ordering: ParallelOrdering
    /// The most records processed at once (their results not yet taken downstream included).
    public var maxConcurrency: Int
    /// Per partition, the most records read and not yet done (queued or running); a partition
    /// that many records behind is not read further, so the consumer pauses it alone.
    public var maxBufferedPerPartition: Int
    /// How often completed offsets are committed.
    public var commitInterval: Duration
    /// How long a revoke (or the end of the stream) waits for a partition's running records
    /// to finish before committing what completed; keep it below the consumer's
    /// `rebalanceSafeCommitTimeout`.
    public var drainTimeout: Duration
    /// The longest commit metadata written (the broker's `offset.metadata.max.bytes`, 4096 by default).
    public var maxMetadataBytes: Int
    /// Retries of a failing record.
    public var retry: ParallelRetry

    /// Settings for `ordering` with at most `maxConcurrency` records at once.
    public init(
        ordering: ParallelOrdering = .key, maxConcurrency: Int = 100, maxBufferedPerPartition: Int = 1_000,
        commitInterval: Duration = .seconds(1), drainTimeout: Duration = .seconds(10), maxMetadataBytes: Int = 4096,
        retry: ParallelRetry = ParallelRetry()
    ) {
        self.ordering = ordering
        self.maxConcurrency = maxConcurrency
        self.maxBufferedPerPartition = maxBufferedPerPartition
        self.commitInterval = commitInterval
        self.drainTimeout = drainTimeout
        self.maxMetadataBytes = maxMetadataBytes
        self.retry = retry
    }

    func validate() throws(KafkaError) {
        func check(_ condition: Bool, _ message: String) throws(KafkaError) {
            if !condition { throw KafkaError(.invalidConfiguration, "ParallelSettings: \(message)") }
        }
        try check(maxConcurrency >= 1, "maxConcurrency must be at least 1, got \(maxConcurrency)")
        try check(
            maxBufferedPerPartition >= 1, "maxBufferedPerPartition must be at least 1, got \(maxBufferedPerPartition)")
        try check(commitInterval > .zero, "commitInterval must be positive, got \(commitInterval)")
        try check(drainTimeout >= .zero, "drainTimeout must not be negative, got \(drainTimeout)")
        try check(
            maxMetadataBytes >= 0, "maxMetadataBytes must not be negative (0: no metadata), got \(maxMetadataBytes)")
        try check(
            retry.maxAttempts >= 1, "retry.maxAttempts must be at least 1 (1: no retry), got \(retry.maxAttempts)")
        try check(
            retry.initialBackoff >= .zero && retry.maxBackoff >= retry.initialBackoff,
            "retry backoffs must satisfy 0 <= initialBackoff <= maxBackoff, got \(retry.initialBackoff) and \(retry.maxBackoff)"
        )
    }
}
