import Glibc

/// What a consumer reads: Alpakka's `Subscriptions`.
public struct Subscription: Sendable, Equatable, CustomStringConvertible {
    enum Kind: Sendable, Equatable {
        case topics([String])
        case pattern(String)
    }

    let kind: Kind

    /// Subscribe, as a member of the consumer group, to `topics`; the group
    /// coordinator assigns partitions and rebalances them as members come and go.
    public static func topics(_ topics: String...) -> Subscription { .topics(topics) }

    /// Subscribe, as a member of the consumer group, to `topics`.
    public static func topics(_ topics: [String]) -> Subscription { Subscription(kind: .topics(topics)) }

    /// Subscribe, as a member of the consumer group, to every topic whose name
    /// matches the regular expression `pattern` (POSIX extended, as librdkafka
    /// matches it), including topics created later (seen at the next metadata
    /// refresh, `topic.metadata.refresh.interval.ms`).
    public static func topicPattern(_ pattern: String) -> Subscription { Subscription(kind: .pattern(pattern)) }

    /// What librdkafka's subscribe takes: topic names, or the pattern with its leading `^`.
    var topicNames: [String] {
        switch kind {
        case .topics(let t): return t
        case .pattern(let p): return [p.hasPrefix("^") ? p : "^" + p]
        }
    }

    func validate() throws(KafkaError) {
        switch kind {
        case .topics(let topics):
            try check(!topics.isEmpty, "subscription names no topic: pass at least one topic to Subscription.topics")
            for topic in topics { try TopicName.validate(topic) }
        case .pattern(let pattern):
            try check(!pattern.isEmpty && pattern != "^", "topic pattern is empty: pass a regular expression such as \"^orders-.*\"")
            var regex = regex_t()
            let compiled = regcomp(&regex, pattern, REG_EXTENDED | REG_NOSUB)
            if compiled == 0 { regfree(&regex) }
            try check(compiled == 0, "topic pattern \"\(pattern)\" is not a valid regular expression (POSIX extended)")
        }
    }

    public var description: String {
        switch kind {
        case .topics(let t): return "topics(\(t.joined(separator: ",")))"
        case .pattern(let p): return "topicPattern(\(p))"
        }
    }
}
