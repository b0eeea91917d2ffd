/// TLS to the brokers: which certificate authorities to trust, the client's own certificate
/// for mutual TLS, and whether the broker's host name is checked.
public struct KafkaTLS: Sendable, Equatable {
    /// The certificate authorities that vouch for the brokers' certificates.
    public enum Trust: Sendable, Equatable {
        /// The system's (OpenSSL's default locations).
        case system
        /// The certificates in this PEM text (`ssl.ca.pem`).
        case pem(String)
        /// The PEM certificates in this file, or in this directory of hashed certificates (`ssl.ca.location`).
        case file(String)
    }

    /// The client's certificate and private key, for brokers that authenticate clients by TLS (mTLS).
    public enum ClientIdentity: Sendable, Equatable {
        /// PEM text (`ssl.certificate.pem`, `ssl.key.pem`); `keyPassword` decrypts an encrypted key.
        case pem(certificate: String, key: String, keyPassword: String? = nil)
        /// PEM files (`ssl.certificate.location`, `ssl.key.location`); `keyPassword` decrypts an encrypted key.
        case files(certificate: String, key: String, keyPassword: String? = nil)
    }

    /// The authorities trusted to sign broker certificates.
    public var trust: Trust
    /// The client's certificate and key for mutual TLS; nil when the broker does not ask for one.
    public var clientIdentity: ClientIdentity?
    /// Whether the broker's certificate must name the host connected to
    /// (`ssl.endpoint.identification.algorithm` `https`, or `none`). Turn it off only for
    /// brokers whose certificates do not name their advertised hosts.
    public var verifiesHostname: Bool

    /// TLS trusting `trust`, presenting `clientIdentity` if any, checking host names unless told not to.
    public init(trust: Trust = .system, clientIdentity: ClientIdentity? = nil, verifiesHostname: Bool = true) {
        self.trust = trust
        self.clientIdentity = clientIdentity
        self.verifiesHostname = verifiesHostname
    }

    var properties: [String: String] {
        var properties = ["ssl.endpoint.identification.algorithm": verifiesHostname ? "https" : "none"]
        switch trust {
        case .system: break
        case .pem(let pem): properties["ssl.ca.pem"] = pem
        case .file(let path): properties["ssl.ca.location"] = path
        }
        switch clientIdentity {
        case nil: break
        case .pem(let certificate, let key, let password)?:
            properties["ssl.certificate.pem"] = certificate
            properties["ssl.key.pem"] = key
            if let password { properties["ssl.key.password"] = password }
        case .files(let certificate, let key, let password)?:
            properties["ssl.certificate.location"] = certificate
            properties["ssl.key.location"] = key
            if let password { properties["ssl.key.password"] = password }
        }
        return properties
    }

    /// See ``KafkaSecurity/validate()``.
    func validate() throws(KafkaError) {
        switch trust {
        case .system: break
        case .pem(let pem): try PEMCheck.certificates(pem, what: "the trusted CA certificates (trust: .pem)")
        case .file(let path): try PEMCheck.caLocation(path)
        }
        switch clientIdentity {
        case nil: break
        case .pem(let certificate, let key, let password)?:
            try PEMCheck.certificates(certificate, what: "the client certificate (clientIdentity: .pem)")
            try PEMCheck.privateKey(key, what: "the client key (clientIdentity: .pem)", password: password)
        case .files(let certificate, let key, let password)?:
            try PEMCheck.certificates(
                try PEMCheck.readFile(certificate, what: "client certificate"),
                what: "the client certificate file \(certificate)")
            try PEMCheck.privateKey(
                try PEMCheck.readFile(key, what: "client key"), what: "the client key file \(key)", password: password)
        }
    }
}

extension KafkaTLS: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The settings with the private key and its password shown as ``SecretProperties/redacted``.
    public var description: String {
        let trusted =
            switch trust {
            case .system: "system"
            case .pem(let pem): "pem(\(PEMCheck.count("CERTIFICATE", in: pem)) certificates)"
            case .file(let path): "file(\(path))"
            }
        let identity =
            switch clientIdentity {
            case nil: "none"
            case .pem(_, _, let password)?:
                "pem(certificate, key: \(SecretProperties.redacted)\(password == nil ? "" : ", keyPassword: \(SecretProperties.redacted)"))"
            case .files(let certificate, let key, let password)?:
                "files(certificate: \(certificate), key: \(key)\(password == nil ? "" : ", keyPassword: \(SecretProperties.redacted)"))"
            }
        return "KafkaTLS(trust: \(trusted), clientIdentity: \(identity), verifiesHostname: \(verifiesHostname))"
    }

    /// The same as ``description``: secrets are redacted here too.
    public var debugDescription: String { description }

    /// Reflection (`dump`) sees only the redacted description.
    public var customMirror: Mirror { Mirror(self, children: ["redacted": description], displayStyle: .struct) }
}
