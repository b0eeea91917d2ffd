import CRdKafka
import DequeModule

/// The state of one ``ProducerFlexiFlow`` run, with no I/O: which messages are
/// in flight, which records of them are acknowledged, who is waiting.
///
/// Three parties drive it, each taking the lock once per step: the pump
/// (``register(_:recordCount:)`` once per message), the engine's poll thread
/// (``deliver(_:)`` once per delivery-report batch) and the downstream
/// (``next(into:)`` once per batch of ready results). Results leave strictly
/// in input order; capacity counts messages registered but not yet handed to
/// the downstream consumer, so upstream is never pulled beyond `parallelism`.
struct ProducerFlowStateMachine<Key: Sendable, Value: Sendable, PassThrough: Sendable> {
    typealias Message = ProducerMessage<Key, Value, PassThrough>
    typealias Result = ProducerResult<Key, Value, PassThrough>

    /// Bits of a record's token: 28 bits of message sequence (wrapping), 20 of record index.
    static var sequenceBits: UInt64 { 28 }
    static var indexBits: UInt64 { 20 }
    /// The most records one `multi` message may hold.
    static var maxRecordsPerMessage: Int { 1 << Int(indexBits) }
    /// The largest effective parallelism (sequence numbers must not wrap within the in-flight window).
    static var maxParallelism: Int { 1 << Int(sequenceBits - 1) }

    /// Where one record was written.
    struct Outcome {
        var partition: Int32 = -1
        var offset: Int64 = -1
        var timestamp: KafkaTimestamp? = nil
    }

    private struct Entry {
        var message: Message
        var remaining: Int
        var first = Outcome()
        var rest: [Outcome]
        var failure: KafkaError?

        var isComplete: Bool { remaining == 0 }
    }

    private enum Upstream {
        case running
        case finished
        case failed(any Error)
    }

    let parallelism: Int
    /// How much capacity must be free before a waiting pump is resumed (avoids a wake-up per message).
    let resumeThreshold: Int
    private var entries: Deque<Entry> = []
    private var headSequence: UInt64 = 0
    private var handedOut = 0
    private var upstream = Upstream.running
    private var stopPump = false
    private var terminated = false
    private(set) var downstreamWaiting = false
    private(set) var pumpWaiting = false

    init(parallelism: Int) {
        self.parallelism = min(max(1, parallelism), Self.maxParallelism)
        self.resumeThreshold = max(1, min(self.parallelism / 4, 1024))
    }

    /// Messages registered and not yet given back by the downstream.
    var outstanding: Int { entries.count + handedOut }

    /// The token librdkafka carries for record `index` of message `sequence`.
    static func token(sequence: UInt64, index: Int) -> UInt64 {
        (sequence & ((1 << sequenceBits) - 1)) << indexBits | UInt64(index)
    }

    // MARK: Pump

    enum CapacityAction: Equatable {
        /// Pull the next message.
        case proceed
        /// Wait to be resumed, then ask again.
        case suspend
        /// The run has failed or was cancelled: pull nothing more.
        case stop
    }

    /// The pump asks before pulling a message from upstream.
    mutating func pumpWantsCapacity() -> CapacityAction {
        if stopPump { return .stop }
        if outstanding < parallelism { return .proceed }
        pumpWaiting = true
        return .suspend
    }

    enum RegisterAction: Equatable {
        /// Produce the message's records with tokens for `sequence`; `hasCapacity`
        /// says whether the pump may pull another message without asking.
        case produce(sequence: UInt64, hasCapacity: Bool, resumeDownstream: Bool)
        /// Drop the message: the run has failed or was cancelled.
        case stop
    }

    /// Records `message` as in flight, before any of its `recordCount` records is produced.
    mutating func register(_ message: Message, recordCount: Int) -> RegisterAction {
        if stopPump { return .stop }
        let sequence = headSequence &+ UInt64(entries.count)
        let rest = recordCount > 1 ? [Outcome](repeating: Outcome(), count: recordCount - 1) : []
        entries.append(Entry(message: message, remaining: recordCount, rest: rest))
        // A message without records is complete at once: it may be what the downstream waits for.
        let resume = recordCount == 0 && entries.count == 1 && takeDownstreamWaiting()
        return .produce(sequence: sequence, hasCapacity: outstanding < parallelism, resumeDownstream: resume)
    }

    /// librdkafka refused record `index` of message `sequence` at once: the message fails.
    mutating func recordRejected(sequence: UInt64, index: Int, error: KafkaError) -> Bool {
        stopPump = true
        guard let position = position(ofToken: Self.token(sequence: sequence, index: index)) else { return false }
        if entries[position].failure == nil { entries[position].failure = error }
        return position == 0 && takeDownstreamWaiting()
    }

    /// Upstream completed (`error == nil`) or failed (including a serialisation error).
    /// The downstream emits what is in flight first, then completes or fails.
    mutating func pumpFinished(error: (any Error)?) -> Bool {
        if case .running = upstream {
            upstream = error.map { .failed($0) } ?? .finished
        }
        stopPump = true
        pumpWaiting = false
        return takeDownstreamWaiting()
    }

    // MARK: Delivery reports

    struct Wakeups: Equatable {
        var downstream = false
        var pump = false
    }

    /// Applies a batch of delivery reports for this run.
    mutating func deliver(_ reports: UnsafeBufferPointer<DeliveryReport>) -> Wakeups {
        var failed = false
        for report in reports {
            guard let position = position(ofToken: report.token) else { continue }  // a stale report
            let index = Int(report.token & ((1 << Self.indexBits) - 1))
            entries[position].remaining -= 1
            if report.succeeded {
                let outcome = Outcome(partition: report.partition, offset: report.offset, timestamp: report.timestamp)
                if index == 0 {
                    entries[position].first = outcome
                } else if index - 1 < entries[position].rest.count {
                    entries[position].rest[index - 1] = outcome
                }
            } else if entries[position].failure == nil {
                entries[position].failure = report.failure(topic: topic(of: entries[position].message, index: index))
                failed = true
            }
        }
        var wakeups = Wakeups()
        if failed {
            stopPump = true
            wakeups.pump = takePumpWaiting()
        }
        if let head = entries.first, head.isComplete || head.failure != nil {
            wakeups.downstream = takeDownstreamWaiting()
        }
        return wakeups
    }

    /// The engine can deliver nothing more (fatal error or closed): every
    /// message not yet acknowledged fails with `error`.
    mutating func engineFailed(_ error: KafkaError) -> Wakeups {
        for i in entries.indices where !entries[i].isComplete && entries[i].failure == nil {
            entries[i].failure = error
        }
        if case .running = upstream { upstream = .failed(error) }
        stopPump = true
        return Wakeups(downstream: takeDownstreamWaiting(), pump: takePumpWaiting())
    }

    // MARK: Downstream

    enum NextAction {
        /// Results were appended to the buffer.
        case emit(resumePump: Bool)
        /// Nothing is ready: wait to be resumed, then ask again.
        case suspend(resumePump: Bool)
        /// Everything was emitted and upstream completed.
        case finish(resumePump: Bool)
        /// The run fails with `error` (everything before it was emitted).
        case fail(any Error, resumePump: Bool)
    }

    /// The downstream has finished with the `returned` results of its previous
    /// batch and wants more: appends every ready result, in order, to `buffer`.
    mutating func next(returned: Int, into buffer: inout [Result]) -> NextAction {
        handedOut -= returned
        if terminated { return .finish(resumePump: takePumpWaiting()) }
        var emitted = 0
        while let head = entries.first {
            if let failure = head.failure {
                if emitted > 0 { break }
                return terminate(with: failure)
            }
            guard head.isComplete else { break }
            buffer.append(Self.result(of: entries.removeFirst()))
            headSequence &+= 1
            emitted += 1
        }
        handedOut += emitted
        // The downstream gives back everything it was handed before asking again, so
        // once it is idle all capacity is free: waiting for the threshold cannot stall.
        let resumePump = pumpWaiting && !stopPump && parallelism - outstanding >= resumeThreshold && takePumpWaiting()
        if emitted > 0 { return .emit(resumePump: resumePump) }
        if entries.isEmpty {
            switch upstream {
            case .finished:
                terminated = true
                return .finish(resumePump: resumePump || takePumpWaiting())
            case .failed(let error):
                return terminate(with: error)
            case .running:
                break
            }
        }
        downstreamWaiting = true
        return .suspend(resumePump: resumePump)
    }

    /// The downstream stopped waiting (its task was cancelled).
    mutating func downstreamCancelled() -> Wakeups {
        downstreamWaiting = false
        stopPump = true
        terminated = true
        return Wakeups(downstream: false, pump: takePumpWaiting())
    }

    // MARK: Helpers

    private mutating func terminate(with error: any Error) -> NextAction {
        terminated = true
        stopPump = true
        return .fail(error, resumePump: takePumpWaiting())
    }

    private mutating func takeDownstreamWaiting() -> Bool {
        defer { downstreamWaiting = false }
        return downstreamWaiting
    }

    private mutating func takePumpWaiting() -> Bool {
        defer { pumpWaiting = false }
        return pumpWaiting
    }

    private func position(ofToken token: UInt64) -> Int? {
        let mask: UInt64 = (1 << Self.sequenceBits) - 1
        let sequence = token >> Self.indexBits
        let position = Int((sequence &- headSequence) & mask)
        return position < entries.count ? position : nil
    }

    private func topic(of message: Message, index: Int) -> String {
        switch message {
        case .single(let record, _): return record.topic
        case .multi(let records, _): return index < records.count ? records[index].topic : "?"
        case .passThrough: return "?"
        }
    }

    private static func result(of entry: Entry) -> Result {
        switch entry.message {
        case .single(let record, let passThrough):
            return .single(metadata(record, entry.first), record, passThrough: passThrough)
        case .multi(let records, let passThrough):
            var parts: [(RecordMetadata, ProducerRecord<Key, Value>)] = []
            parts.reserveCapacity(records.count)
            for (i, record) in records.enumerated() {
                parts.append((metadata(record, i == 0 ? entry.first : entry.rest[i - 1]), record))
            }
            return .multi(parts, passThrough: passThrough)
        case .passThrough(let passThrough):
            return .passThrough(passThrough)
        }
    }

    private static func metadata(_ record: ProducerRecord<Key, Value>, _ outcome: Outcome) -> RecordMetadata {
        RecordMetadata(topic: record.topic, partition: outcome.partition, offset: outcome.offset, timestamp: outcome.timestamp)
    }
}
