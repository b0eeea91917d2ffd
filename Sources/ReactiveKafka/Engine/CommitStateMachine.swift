/// Commit bookkeeping of the consumer engine, as a pure state machine (no I/O).
///
/// Commit requests from any number of committers are merged (highest offset
/// per partition wins) and sent one request at a time, so an older commit can
/// never overwrite a newer one on the broker. Offsets of partitions that are
/// no longer assigned are not sent. A request that is not acknowledged before
/// its deadline fails with a commit timeout; retriable broker errors are
/// retried until then.
struct CommitStateMachine {
    typealias RequestID = UInt64

    struct Request {
        let id: RequestID
        let offsets: [TopicPartition: CommitPosition]
        let deadline: ContinuousClock.Instant
        let started: ContinuousClock.Instant
    }

    /// One merged commit sent to librdkafka.
    struct Send: Equatable {
        let sendID: UInt64
        let offsets: [TopicPartition: CommitPosition]
    }

    enum Outcome: Equatable {
        /// The broker acknowledged: these requests succeeded.
        case succeeded([RequestID])
        /// These requests failed for good.
        case failed([RequestID], KafkaError)
        /// The error was retriable; the requests are queued again.
        case retrying
    }

    private var waiting: [Request] = []
    private var inFlight: (sendID: UInt64, requests: [Request])?
    private var nextSendID: UInt64 = 1

    var hasWork: Bool { !waiting.isEmpty || inFlight != nil }
    var isIdle: Bool { waiting.isEmpty && inFlight == nil }

    mutating func enqueue(_ request: Request) {
        waiting.append(request)
    }

    /// The next merged commit to send, if none is in flight. Requests whose
    /// partitions are all unassigned complete at once (`skipped`).
    mutating func nextSend(assigned: Set<TopicPartition>) -> (send: Send?, skipped: [RequestID]) {
        guard inFlight == nil, !waiting.isEmpty else { return (nil, []) }
        var merged: [TopicPartition: CommitPosition] = [:]
        var included: [Request] = []
        var skipped: [RequestID] = []
        for request in waiting {
            let live = request.offsets.filter { assigned.contains($0.key) }
            if live.isEmpty {
                skipped.append(request.id)
                continue
            }
            included.append(request)
            for (partition, position) in live {
                if let existing = merged[partition], existing.nextOffset >= position.nextOffset { continue }
                merged[partition] = position
            }
        }
        waiting.removeAll()
        guard !included.isEmpty else { return (nil, skipped) }
        let send = Send(sendID: nextSendID, offsets: merged)
        nextSendID += 1
        inFlight = (send.sendID, included)
        return (send, skipped)
    }

    /// librdkafka answered the commit `sendID` with `error` (nil: success).
    mutating func completed(sendID: UInt64, error: KafkaError?, retriable: Bool, now: ContinuousClock.Instant) -> Outcome {
        guard let current = inFlight, current.sendID == sendID else { return .succeeded([]) }
        inFlight = nil
        guard let error else { return .succeeded(current.requests.map(\.id)) }
        if retriable {
            let live = current.requests.filter { $0.deadline > now }
            let expired = current.requests.filter { $0.deadline <= now }
            waiting.insert(contentsOf: live, at: 0)
            if !expired.isEmpty { return .failed(expired.map(\.id), error) }
            return .retrying
        }
        return .failed(current.requests.map(\.id), error)
    }

    /// Requests whose deadline passed, removed. The in-flight send stays
    /// tracked so that its late answer is ignored.
    mutating func expire(now: ContinuousClock.Instant) -> [Request] {
        var expired = waiting.filter { $0.deadline <= now }
        waiting.removeAll { $0.deadline <= now }
        if var current = inFlight {
            expired += current.requests.filter { $0.deadline <= now }
            current.requests.removeAll { $0.deadline <= now }
            inFlight = current
        }
        return expired
    }

    /// Everything outstanding, removed (the consumer closes).
    mutating func drainAll() -> [RequestID] {
        let all = waiting.map(\.id) + (inFlight?.requests.map(\.id) ?? [])
        waiting.removeAll()
        inFlight = nil
        return all
    }

    /// The earliest deadline outstanding, to bound the engine's wait.
    var earliestDeadline: ContinuousClock.Instant? {
        (waiting + (inFlight?.requests ?? [])).map(\.deadline).min()
    }
}
