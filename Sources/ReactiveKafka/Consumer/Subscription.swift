/// What a consumer reads: Alpakka's `Subscriptions`.
public struct Subscription: Sendable, Equatable, CustomStringConvertible {
    enum Kind: Sendable, Equatable {
        case topics([String])
    }

    let kind: Kind

    /// Subscribe, as a member of the consumer group, to `topics`; the group
    /// coordinator assigns partitions and rebalances them as members come and go.
    public static func topics(_ topics: String...) -> Subscription { .topics(topics) }

    /// Subscribe, as a member of the consumer group, to `topics`.
    public static func topics(_ topics: [String]) -> Subscription { Subscription(kind: .topics(topics)) }

    var topicNames: [String] {
        switch kind {
        case .topics(let t): return t
        }
    }

    func validate() throws(KafkaError) {
        switch kind {
        case .topics(let topics):
            try check(!topics.isEmpty, "subscription names no topic: pass at least one topic to Subscription.topics")
            for topic in topics { try TopicName.validate(topic) }
        }
    }

    public var description: String {
        switch kind {
        case .topics(let t): return "topics(\(t.joined(separator: ",")))"
        }
    }
}
