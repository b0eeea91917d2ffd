/// How the client authenticates with SASL.
public enum KafkaSASL: Sendable, Equatable {
    /// SASL/PLAIN: the password travels as is, so use it over TLS.
    case plain(username: String, password: String)
    /// SASL/SCRAM-SHA-256: the password never travels.
    case scramSHA256(username: String, password: String)
    /// SASL/SCRAM-SHA-512: the password never travels.
    case scramSHA512(username: String, password: String)
    /// SASL/OAUTHBEARER, with tokens from ``KafkaOAuthBearer``.
    case oauthBearer(KafkaOAuthBearer)

    /// librdkafka's name of the mechanism (`sasl.mechanism`).
    public var mechanism: String {
        switch self {
        case .plain: "PLAIN"
        case .scramSHA256: "SCRAM-SHA-256"
        case .scramSHA512: "SCRAM-SHA-512"
        case .oauthBearer: "OAUTHBEARER"
        }
    }

    var properties: [String: String] {
        switch self {
        case .plain(let username, let password), .scramSHA256(let username, let password),
            .scramSHA512(let username, let password):
            return ["sasl.mechanism": mechanism, "sasl.username": username, "sasl.password": password]
        case .oauthBearer(let bearer):
            return bearer.properties.merging(["sasl.mechanism": mechanism]) { _, new in new }
        }
    }

    func validate() throws(KafkaError) {
        switch self {
        case .plain(let username, let password), .scramSHA256(let username, let password),
            .scramSHA512(let username, let password):
            try SecurityCheck.present(username, "the SASL username", for: mechanism)
            try SecurityCheck.present(password, "the SASL password", for: mechanism, secret: true)
        case .oauthBearer(let bearer):
            try bearer.validate()
        }
    }
}

/// Where OAUTHBEARER tokens come from.
public enum KafkaOAuthBearer: Sendable, Equatable {
    /// librdkafka's unsecured JSON Web Tokens, made up by the client for `principal`: for
    /// development and tests against brokers that accept unsecured tokens, never in production.
    /// `extensions` are SASL extensions (RFC 7628) sent with the token.
    case unsecuredJWT(
        principal: String, scopes: [String] = [], lifetime: Duration = .seconds(3600),
        extensions: [String: String] = [:])
    /// OpenID Connect client credentials: librdkafka fetches tokens from `tokenEndpoint` and
    /// refreshes them before they expire. Needs a librdkafka built with libcurl (Debian's
    /// 2.0.2 is not: ``ConsumerSettings/withSecurity(_:)`` then says so).
    case oidc(
        clientId: String, clientSecret: String, tokenEndpoint: String, scopes: [String] = [],
        extensions: [String: String] = [:])

    var properties: [String: String] {
        switch self {
        case .unsecuredJWT(let principal, let scopes, let lifetime, let extensions):
            var config = ["principal=\(principal)"]
            if !scopes.isEmpty { config.append("scope=\(scopes.joined(separator: ","))") }
            config.append("lifeSeconds=\(max(1, Int(lifetime.components.seconds)))")
            config += extensions.sorted { $0.key < $1.key }.map { "extension_\($0.key)=\($0.value)" }
            return [
                "enable.sasl.oauthbearer.unsecure.jwt": "true",
                "sasl.oauthbearer.config": config.joined(separator: " "),
            ]
        case .oidc(let clientId, let clientSecret, let tokenEndpoint, let scopes, let extensions):
            var properties = [
                "sasl.oauthbearer.method": "oidc",
                "sasl.oauthbearer.client.id": clientId,
                "sasl.oauthbearer.client.secret": clientSecret,
                "sasl.oauthbearer.token.endpoint.url": tokenEndpoint,
            ]
            if !scopes.isEmpty { properties["sasl.oauthbearer.scope"] = scopes.joined(separator: " ") }
            if !extensions.isEmpty {
                properties["sasl.oauthbearer.extensions"] = extensions.sorted { $0.key < $1.key }.map {
                    "\($0.key)=\($0.value)"
                }.joined(separator: ",")
            }
            return properties
        }
    }

    func validate() throws(KafkaError) {
        switch self {
        case .unsecuredJWT(let principal, let scopes, let lifetime, let extensions):
            try SecurityCheck.present(principal, "the principal", for: "OAUTHBEARER (unsecured JWT)")
            // librdkafka reads its unsecured-token configuration as space-separated name=value pairs.
            try SecurityCheck.token(principal, "the principal", forbidding: " =")
            for scope in scopes { try SecurityCheck.token(scope, "the scope \"\(scope)\"", forbidding: " =,") }
            guard lifetime >= .seconds(1) else {
                throw KafkaError(
                    .invalidConfiguration,
                    "OAUTHBEARER (unsecured JWT): the token lifetime must be at least 1 second, got \(lifetime)")
            }
            try SecurityCheck.extensions(extensions, valuesForbidding: " ")
        case .oidc(let clientId, let clientSecret, let tokenEndpoint, let scopes, let extensions):
            try SecurityCheck.present(clientId, "the client id", for: "OAUTHBEARER (OIDC)")
            try SecurityCheck.present(clientSecret, "the client secret", for: "OAUTHBEARER (OIDC)", secret: true)
            try SecurityCheck.httpURL(tokenEndpoint, "the token endpoint")
            for scope in scopes { try SecurityCheck.token(scope, "the scope \"\(scope)\"", forbidding: " ") }
            // librdkafka reads extensions as comma-separated key=value pairs.
            try SecurityCheck.extensions(extensions, valuesForbidding: ",=")
        }
    }
}

extension KafkaSASL: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The mechanism and user, with the password shown as ``SecretProperties/redacted``.
    public var description: String {
        switch self {
        case .plain(let username, _), .scramSHA256(let username, _), .scramSHA512(let username, _):
            "\(mechanism)(username: \(username), password: \(SecretProperties.redacted))"
        case .oauthBearer(let bearer):
            "OAUTHBEARER(\(bearer))"
        }
    }

    /// The same as ``description``: secrets are redacted here too.
    public var debugDescription: String { description }

    /// Reflection (`dump`) sees only the redacted description.
    public var customMirror: Mirror { Mirror(self, children: ["redacted": description], displayStyle: .enum) }
}

extension KafkaOAuthBearer: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The token source, with the client secret and token endpoint (secret by ``SecretProperties``'s
    /// rule) shown as ``SecretProperties/redacted``, and extensions by name only.
    public var description: String {
        switch self {
        case .unsecuredJWT(let principal, let scopes, let lifetime, let extensions):
            "unsecuredJWT(principal: \(principal), scopes: \(scopes), lifetime: \(lifetime), extensions: \(extensions.keys.sorted()))"
        case .oidc(let clientId, _, _, let scopes, let extensions):
            "oidc(clientId: \(clientId), clientSecret: \(SecretProperties.redacted), tokenEndpoint: \(SecretProperties.redacted), scopes: \(scopes), extensions: \(extensions.keys.sorted()))"
        }
    }

    /// The same as ``description``: secrets are redacted here too.
    public var debugDescription: String { description }

    /// Reflection (`dump`) sees only the redacted description.
    public var customMirror: Mirror { Mirror(self, children: ["redacted": description], displayStyle: .enum) }
}
