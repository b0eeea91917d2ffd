/// Security properties in settings: ``KafkaSecurity`` applied to them, and the same up-front
/// checks for security properties set by name (``ConsumerSettings/withProperty(_:_:)``, a
/// configuration file's `kafka-clients` section), run by the settings' `validate()`.
enum SecurityProperties {
    /// `properties` without any of ``KafkaSecurity/managedProperties``, plus those of `security`,
    /// which librdkafka must accept.
    static func applying(_ security: KafkaSecurity, to properties: [String: String], client: String) throws(KafkaError)
        -> [String: String]
    {
        let added = try security.properties()
        // librdkafka refuses what this build cannot do (OIDC without libcurl) when it is set.
        try KafkaClientConfiguration.validate(added, client: client)
        return properties.filter { !KafkaSecurity.managedProperties.contains($0.key) }.merging(added) { _, new in new }
    }

    /// The pairs of which at most one may be set: a file, or the same PEM inline.
    static let exclusive = [
        ("ssl.ca.location", "ssl.ca.pem"), ("ssl.certificate.location", "ssl.certificate.pem"),
        ("ssl.key.location", "ssl.key.pem"),
    ]

    /// Checks the TLS properties among `properties` as ``KafkaSecurity/validate()`` checks its own:
    /// files and PEM text mixed for the same thing, a certificate without its key (or the reverse),
    /// files that do not exist or hold no PEM, PEM text that is not PEM. (A PKCS#12 keystore is
    /// left to librdkafka, which reports it when the client starts, its path scrubbed.)
    static func check(_ properties: [String: String]) throws(KafkaError) {
        for (file, pem) in exclusive where properties[file] != nil && properties[pem] != nil {
            throw KafkaError(
                .invalidConfiguration,
                "both \(file) and \(pem) are set: set one (a file, or the same PEM inline), not both")
        }
        let hasCertificate = properties["ssl.certificate.location"] != nil || properties["ssl.certificate.pem"] != nil
        let hasKey = properties["ssl.key.location"] != nil || properties["ssl.key.pem"] != nil
        if hasCertificate != hasKey {
            throw KafkaError(
                .invalidConfiguration,
                hasCertificate
                    ? "a client certificate (ssl.certificate.*) is set without its private key: set ssl.key.location or ssl.key.pem"
                    : "a client private key (ssl.key.*) is set without its certificate: set ssl.certificate.location or ssl.certificate.pem"
            )
        }
        let password = properties["ssl.key.password"]
        if let path = properties["ssl.ca.location"] { try PEMCheck.caLocation(path) }
        if let pem = properties["ssl.ca.pem"] { try PEMCheck.certificates(pem, what: "ssl.ca.pem") }
        if let path = properties["ssl.certificate.location"] {
            try PEMCheck.certificates(
                try PEMCheck.readFile(path, what: "ssl.certificate.location"),
                what: "the ssl.certificate.location file \(path)")
        }
        if let pem = properties["ssl.certificate.pem"] { try PEMCheck.certificates(pem, what: "ssl.certificate.pem") }
        if let path = properties["ssl.key.location"] {
            try PEMCheck.privateKey(
                try PEMCheck.readFile(path, what: "ssl.key.location"), what: "the ssl.key.location file \(path)",
                password: password)
        }
        if let pem = properties["ssl.key.pem"] { try PEMCheck.privateKey(pem, what: "ssl.key.pem", password: password) }
    }
}
