import CRdKafka

/// When a question answered by blocking librdkafka calls must be answered by: every call
/// made for it gets what is left of one timeout, so a question needing many calls is
/// bounded by that one timeout, not by a timeout each.
struct BlockingCallDeadline: Sendable {
    let instant: ContinuousClock.Instant
    let timeout: Duration
    /// The client asking, for messages ("metadata client").
    let client: String

    /// A deadline `timeout` from now.
    init(timeout: Duration, client: String) {
        self.instant = .now + timeout
        self.timeout = timeout
        self.client = client
    }

    /// What is left for the next librdkafka call, at least 1 ms; throws once nothing is left.
    func remainingMilliseconds(_ what: String) throws(KafkaError) -> Int32 {
        let left = instant - .now
        guard left > .zero else { throw expired(what) }
        return Int32(clamping: max(1, left.milliseconds))
    }

    /// The error for `what` not answered in time.
    func expired(_ what: String) -> KafkaError {
        KafkaError.fromCode(RD_KAFKA_RESP_ERR__TIMED_OUT, "\(what): the \(client)'s timeout of \(timeout) passed")
    }
}
