/// Which librdkafka properties hold secrets, and how their values are kept out
/// of everything the connector prints: settings' descriptions and reflection,
/// configuration errors, and log lines. This is the one place that rule lives.
///
/// A property counts as secret when its name, compared case-insensitively,
/// contains `pass` (every `…password`), `secret`, `token`, `jaas`, `key.pem`,
/// `keystore`, `credential` or `sasl.oauthbearer.config`, or when it is at
/// most two edits away from the name of one of librdkafka's secret properties
/// (a misspelt `sasl.pasword` or `sasl.pssword` is treated like `sasl.password`).
/// The rule is deliberately broad: showing `<redacted>` for a value that was
/// not secret costs a little debugging; printing a password costs a rotation.
public enum SecretProperties {
    /// What a secret's value is shown as.
    public static let redacted = "<redacted>"

    /// Name fragments that make a property secret (lowercase).
    static let fragments = [
        "pass", "secret", "token", "jaas", "key.pem", "keystore", "credential", "sasl.oauthbearer.config",
    ]

    /// The secret properties librdkafka knows in this build, for catching misspellings
    /// of them and reading their values back from a client; computed once. Names with
    /// `_` are librdkafka's internal pointer properties (`oauthbearer_token_refresh_cb`).
    static let knownSecretNames: [String] = KafkaClientPropertyNames.all.filter {
        containsSecretFragment($0) && !$0.contains("_")
    }

    /// Whether the value of the property `key` must never be printed.
    public static func isSecret(_ key: String) -> Bool {
        let name = key.lowercased()
        if containsSecretFragment(name) { return true }
        return knownSecretNames.contains { editDistance(name, $0, atMost: 2) <= 2 }
    }

    /// `properties` with the value of every secret property replaced by ``redacted``.
    public static func redacting(_ properties: [String: String]) -> [String: String] {
        var copy = properties
        for key in properties.keys where isSecret(key) { copy[key] = redacted }
        return copy
    }

    /// `properties` written as a dictionary literal, sorted by key, secrets redacted:
    /// what settings' descriptions show.
    static func describe(_ properties: [String: String]) -> String {
        if properties.isEmpty { return "[:]" }
        return "["
            + redacting(properties).sorted { $0.key < $1.key }.map { "\"\($0.key)\": \"\($0.value)\"" }.joined(
                separator: ", ") + "]"
    }

    /// `text` (a librdkafka error or log message) without any secret value of
    /// `properties`: librdkafka quotes values in some messages ("Invalid value
    /// "…" for configuration property", a keystore's path, the rest of a
    /// malformed `sasl.oauthbearer.config`), so each secret value, and each
    /// word of it, is replaced by ``redacted`` wherever it appears.
    package static func scrub(_ text: String, secretsOf properties: [String: String]) -> String {
        scrub(text, removing: properties.compactMap { isSecret($0.key) ? $0.value : nil })
    }

    /// `text` with each of `values`, and each word of them, replaced by ``redacted``.
    static func scrub(_ text: String, removing values: [String]) -> String {
        var scrubbed = text
        for needle in needles(values) where scrubbed.contains(needle) {
            scrubbed = scrubbed.replacing(needle, with: redacted)
        }
        return scrubbed
    }

    /// `values`, then the words they are made of, longest first so that a whole value
    /// is replaced before its parts.
    static func needles(_ values: [String]) -> [String] {
        var needles = Set<String>()
        for value in values where !value.isEmpty {
            needles.insert(value)
            // Words of three characters or more: shorter ones would blank out the message
            // while a two-letter fragment gives nothing away.
            for word in value.split(whereSeparator: { $0.isWhitespace || ",;=:\"'".contains($0) }) where word.count >= 3
            {
                needles.insert(String(word))
            }
        }
        return needles.sorted { $0.count != $1.count ? $0.count > $1.count : $0 < $1 }
    }

    private static func containsSecretFragment(_ name: String) -> Bool {
        let lowercased = name.lowercased()
        return fragments.contains { lowercased.contains($0) }
    }

    /// Levenshtein distance between `a` and `b`, or a number above `limit` as soon as it
    /// is certain to exceed it (names of very different lengths are not compared at all).
    static func editDistance(_ a: String, _ b: String, atMost limit: Int) -> Int {
        let a = Array(a.utf8)
        let b = Array(b.utf8)
        if abs(a.count - b.count) > limit { return limit + 1 }
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            var rowMinimum = i
            for j in 1...b.count {
                let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
                current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
                rowMinimum = min(rowMinimum, current[j])
            }
            // Every later row is at least this row's minimum: stop once it is out of reach.
            if rowMinimum > limit { return limit + 1 }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}

/// The secret values of a client's configuration, kept by a client to scrub what librdkafka
/// says later (its errors). It never shows them itself: its description and reflection
/// (`dump` of a client reaches it) say only how many there are.
struct SecretValues: Sendable, CustomStringConvertible, CustomReflectable {
    private let values: [String]

    /// The values of the secret properties among `properties`.
    init(of properties: [String: String]) {
        values = properties.compactMap { SecretProperties.isSecret($0.key) ? $0.value : nil }
    }

    /// `text` without any of the values (``SecretProperties/scrub(_:removing:)``).
    func scrub(_ text: String) -> String { values.isEmpty ? text : SecretProperties.scrub(text, removing: values) }

    var description: String { "SecretValues(\(values.count) \(SecretProperties.redacted))" }
    var customMirror: Mirror { Mirror(self, children: ["count": values.count], displayStyle: .struct) }
}
