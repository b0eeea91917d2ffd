/// Commit bookkeeping of the consumer engine, as a pure state machine (no I/O).
///
/// Commit requests from any number of committers are merged (highest offset
/// per partition wins) and sent one request at a time, so an older commit can
/// never overwrite a newer one on the broker. Offsets of partitions that are
/// no longer assigned are not sent, and the request that held them is told so
/// (never reported as committed). A request that is not acknowledged before
/// its deadline fails: with the last refusal it met, if the coordinator
/// refused it (retriable errors are retried until then), else with a timeout.
struct CommitStateMachine {
    typealias RequestID = UInt64

    struct Request {
        let id: RequestID
        let offsets: [TopicPartition: CommitPosition]
        let deadline: ContinuousClock.Instant
        let started: ContinuousClock.Instant
        /// Its partitions that were not assigned when it was sent: not committed.
        var notAssigned: Set<TopicPartition> = []
        /// The last retriable refusal it met (what it fails with if its deadline passes).
        var lastRefusal: KafkaError? = nil

        init(
            id: RequestID, offsets: [TopicPartition: CommitPosition], deadline: ContinuousClock.Instant,
            started: ContinuousClock.Instant
        ) {
            self.id = id
            self.offsets = offsets
            self.deadline = deadline
            self.started = started
        }
    }

    /// One merged commit sent to librdkafka.
    struct Send: Equatable {
        let sendID: UInt64
        let offsets: [TopicPartition: CommitPosition]
    }

    enum Outcome: Equatable {
        /// The broker acknowledged. Requests in `notAssigned` had those partitions left out
        /// (no longer assigned when sent): only their other partitions were committed.
        case succeeded([RequestID], notAssigned: [RequestID: Set<TopicPartition>] = [:])
        /// These requests failed for good.
        case failed([RequestID], KafkaError)
        /// The error was retriable; the requests are queued again.
        case retrying
    }

    private var waiting: [Request] = []
    private var inFlight: (sendID: UInt64, requests: [Request])?
    private var nextSendID: UInt64 = 1

    var hasWork: Bool { !waiting.isEmpty || inFlight != nil }

    /// Whether a request for any of `partitions` is queued or awaits its answer.
    func hasWork(touching partitions: Set<TopicPartition>) -> Bool {
        let requests = waiting + (inFlight?.requests ?? [])
        return requests.contains { $0.offsets.keys.contains(where: partitions.contains) }
    }
    var isIdle: Bool { waiting.isEmpty && inFlight == nil }

    mutating func enqueue(_ request: Request) {
        waiting.append(request)
    }

    /// The next merged commit to send, if none is in flight. Requests whose
    /// partitions are all unassigned are refused at once (`notAssigned`: nothing of them is sent).
    mutating func nextSend(assigned: Set<TopicPartition>) -> (
        send: Send?, notAssigned: [(RequestID, Set<TopicPartition>)]
    ) {
        guard inFlight == nil, !waiting.isEmpty else { return (nil, []) }
        var merged: [TopicPartition: CommitPosition] = [:]
        var included: [Request] = []
        var refused: [(RequestID, Set<TopicPartition>)] = []
        for var request in waiting {
            let live = request.offsets.filter { assigned.contains($0.key) }
            request.notAssigned.formUnion(request.offsets.keys.filter { !assigned.contains($0) })
            if live.isEmpty {
                refused.append((request.id, request.notAssigned))
                continue
            }
            included.append(request)
            for (partition, position) in live {
                if let existing = merged[partition], existing.nextOffset >= position.nextOffset { continue }
                merged[partition] = position
            }
        }
        waiting.removeAll()
        guard !included.isEmpty else { return (nil, refused) }
        let send = Send(sendID: nextSendID, offsets: merged)
        nextSendID += 1
        inFlight = (send.sendID, included)
        return (send, refused)
    }

    /// librdkafka answered the commit `sendID` with `error` (nil: success).
    mutating func completed(sendID: UInt64, error: KafkaError?, retriable: Bool, now: ContinuousClock.Instant)
        -> Outcome
    {
        guard let current = inFlight, current.sendID == sendID else { return .succeeded([]) }
        inFlight = nil
        guard let error else {
            var notAssigned: [RequestID: Set<TopicPartition>] = [:]
            for request in current.requests where !request.notAssigned.isEmpty {
                notAssigned[request.id] = request.notAssigned
            }
            return .succeeded(current.requests.map(\.id), notAssigned: notAssigned)
        }
        if retriable {
            let live = current.requests.filter { $0.deadline > now }.map { request in
                var retried = request
                retried.lastRefusal = error
                return retried
            }
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
