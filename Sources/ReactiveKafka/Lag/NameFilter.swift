/// Which groups or topics to watch: regular expressions matched against whole names
/// (`orders-.*` matches `orders-eu`, not `old-orders-eu`); no pattern watches every name.
///
/// A pattern made only of letters, digits, `.`, `_` and `-` is also taken as a literal
/// name, which can be read without listing (group listing needs a broker that answers
/// `ListGroups`; librdkafka's mock cluster does not). Such a pattern still matches as a
/// regular expression, so `my.group` watches `my.group` and also `myXgroup` if it is listed.
public struct NameFilter: Sendable, Equatable {
    /// The patterns, as given.
    public let patterns: [String]

    /// A filter of `patterns`. Throws `.invalidConfiguration` naming a pattern that is not a
    /// valid regular expression.
    public init(_ patterns: [String] = []) throws(KafkaError) {
        for pattern in patterns {
            do {
                _ = try Regex(pattern)
            } catch {
                throw KafkaError(.invalidConfiguration, "\"\(pattern)\" is not a valid regular expression: \(error)")
            }
        }
        self.patterns = patterns
    }

    /// A filter that watches every name.
    public static let all = NameFilter(validated: [])

    private init(validated patterns: [String]) { self.patterns = patterns }

    /// The patterns that are plain names.
    public var literalNames: [String] {
        patterns.filter { pattern in
            !pattern.isEmpty && pattern.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }
        }
    }

    /// Whether some name can only be found by listing them all (no pattern, or a pattern that is not a plain name).
    public var needsListing: Bool { patterns.isEmpty || literalNames.count < patterns.count }

    /// The compiled patterns, for one pass over many names (compiled regular expressions cannot cross threads).
    public func matcher() -> Matcher { Matcher(patterns.compactMap { try? Regex($0) }) }

    /// Whether `name` is watched.
    public func matches(_ name: String) -> Bool { matcher().matches(name) }

    /// A ``NameFilter``'s compiled patterns.
    public struct Matcher {
        private let expressions: [Regex<AnyRegexOutput>]

        init(_ expressions: [Regex<AnyRegexOutput>]) { self.expressions = expressions }

        /// Whether `name` matches a whole pattern (every name when there is none).
        public func matches(_ name: String) -> Bool {
            expressions.isEmpty || expressions.contains { (try? $0.wholeMatch(in: name)) != nil }
        }
    }
}
