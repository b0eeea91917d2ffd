/// A sequence of conditions over one key's events, in event-time order, within a time bound:
/// "A followed by B within T", several steps, or "A not followed by B within T".
///
/// ```swift
/// let takeover = EventPattern<Activity>
///     .first("login from a new country") { $0.isNewCountryLogin }
///     .followedBy("large payment") { $0.amount > 1_000 }
///     .within(.seconds(5 * 60))
/// let abandoned = EventPattern<Activity>
///     .first("checkout") { $0.kind == .checkout }
///     .notFollowedBy("payment") { $0.kind == .payment }
///     .within(.seconds(30 * 60))
/// ```
/// Other events may come between the steps. Each event that satisfies the first step starts a
/// match of its own; an event completes every match waiting for the step it satisfies. A
/// trailing `notFollowedBy` step matches when the watermark passes the first event's time plus
/// the bound without such an event (an event at exactly that time still counts as "within").
public struct EventPattern<Element>: Sendable {
    struct Step: Sendable {
        var name: String
        var absent: Bool
        var predicate: @Sendable (Element) -> Bool
    }

    var steps: [Step]
    var bound: Duration?

    /// A pattern starting with an event that satisfies `predicate`; `name` is for messages.
    public static func first(_ name: String, where predicate: @escaping @Sendable (Element) -> Bool) -> EventPattern {
        EventPattern(steps: [Step(name: name, absent: false, predicate: predicate)], bound: nil)
    }

    /// Then, later for the same key, an event that satisfies `predicate`.
    public func followedBy(_ name: String, where predicate: @escaping @Sendable (Element) -> Bool) -> EventPattern {
        var pattern = self
        pattern.steps.append(Step(name: name, absent: false, predicate: predicate))
        return pattern
    }

    /// Then no event that satisfies `predicate` until the bound passes; only as the last step.
    public func notFollowedBy(_ name: String, where predicate: @escaping @Sendable (Element) -> Bool) -> EventPattern {
        var pattern = self
        pattern.steps.append(Step(name: name, absent: true, predicate: predicate))
        return pattern
    }

    /// Every step within `duration` of the first event (required: it bounds the state kept per key).
    public func within(_ duration: Duration) -> EventPattern {
        var pattern = self
        pattern.bound = duration
        return pattern
    }

    /// The bound in milliseconds, or what is wrong with the pattern.
    func validated() throws(StreamKitError) -> Int64 {
        let names = steps.map(\.name).joined(separator: " → ")
        guard let bound else {
            throw .invalidArgument(
                "pattern \(names) has no time bound: add .within(_:), which bounds the state kept per key")
        }
        for (index, step) in steps.enumerated() where step.absent {
            try requireArgument(
                index == steps.count - 1, "pattern \(names): notFollowedBy(\"\(step.name)\") must be the last step")
        }
        return try bound.eventTimeMilliseconds("pattern \(names) within", minimum: 1)
    }
}

/// An occurrence of an ``EventPattern`` for one key.
public struct PatternMatch<Key, Element> {
    /// The key its events share.
    public var key: Key
    /// The events that satisfied the pattern's steps, in step order (a trailing absent step has none).
    public var events: [Element]

    /// A match; the operator creates these, tests may too.
    public init(key: Key, events: [Element]) {
        self.key = key
        self.events = events
    }
}

extension PatternMatch: Sendable where Key: Sendable, Element: Sendable {}
extension PatternMatch: Equatable where Key: Equatable, Element: Equatable {}

/// What ``_Concurrency/AsyncSequence/matching(_:key:time:outOfOrderness:)`` emits.
public enum PatternOutput<Key, Element> {
    /// The pattern occurred.
    case match(PatternMatch<Key, Element>)
    /// An element that arrived behind the watermark: too late to be put in event-time order, it is
    /// in no match.
    case late(Element)
}

extension PatternOutput: Sendable where Key: Sendable, Element: Sendable {}
extension PatternOutput: Equatable where Key: Equatable, Element: Equatable {}
