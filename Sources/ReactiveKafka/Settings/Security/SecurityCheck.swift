import Foundation

/// Up-front checks of SASL credentials and OAUTHBEARER settings. Messages name the setting and
/// what is wrong, never a secret's value.
enum SecurityCheck {
    /// `value` is set: not empty, not blank, no NUL (which ends a C string early).
    static func present(_ value: String, _ what: String, for mechanism: String, secret: Bool = false) throws(KafkaError)
    {
        guard !value.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw KafkaError(.invalidConfiguration, "SASL \(mechanism): \(what) is empty")
        }
        guard !value.contains("\0") else {
            throw KafkaError(
                .invalidConfiguration,
                "SASL \(mechanism): \(what) contains a NUL character\(secret ? "" : ", which librdkafka would cut it at")"
            )
        }
    }

    /// `value` holds none of `forbidden` (separators of the format librdkafka reads it in).
    static func token(_ value: String, _ what: String, forbidding forbidden: String) throws(KafkaError) {
        if let bad = value.first(where: { forbidden.contains($0) }) {
            throw KafkaError(
                .invalidConfiguration, "OAUTHBEARER: \(what) must not contain \(bad == " " ? "spaces" : "'\(bad)'")")
        }
    }

    /// SASL extensions (RFC 7628): keys of letters only, not `auth`; values without `forbidden`
    /// (values are not quoted in messages: they may be credentials).
    static func extensions(_ extensions: [String: String], valuesForbidding forbidden: String) throws(KafkaError) {
        for (key, value) in extensions.sorted(by: { $0.key < $1.key }) {
            guard !key.isEmpty,
                key.unicodeScalars.allSatisfy({
                    ($0.value >= 0x41 && $0.value <= 0x5A) || ($0.value >= 0x61 && $0.value <= 0x7A)
                })
            else {
                throw KafkaError(
                    .invalidConfiguration, "OAUTHBEARER: the extension name \"\(key)\" must be letters only (RFC 7628)")
            }
            guard key != "auth" else {
                throw KafkaError(
                    .invalidConfiguration, "OAUTHBEARER: the extension name \"auth\" is reserved (RFC 7628)")
            }
            if value.contains(where: { forbidden.contains($0) || $0.isNewline }) {
                let shown = forbidden.map { $0 == " " ? "spaces" : "'\($0)'" }.joined(separator: " or ")
                throw KafkaError(
                    .invalidConfiguration,
                    "OAUTHBEARER: the value of extension \(key) must not contain \(shown) or line breaks")
            }
        }
    }

    /// `text` is an absolute http(s) URL with a host.
    static func httpURL(_ text: String, _ what: String) throws(KafkaError) {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "https" || scheme == "http",
            url.host?.isEmpty == false
        else {
            // Not quoted: token endpoints count as secret (SecretProperties), a URL may carry credentials.
            throw KafkaError(
                .invalidConfiguration,
                "OAUTHBEARER (OIDC): \(what) is not an http(s) URL with a host, e.g. https://login.example.com/oauth2/token"
            )
        }
    }
}
