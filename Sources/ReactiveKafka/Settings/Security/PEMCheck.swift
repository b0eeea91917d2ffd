import Foundation

/// Up-front checks of TLS material: PEM text that looks like what it should hold, and files
/// that exist, can be read and hold PEM. Errors name the file or setting and what is wrong,
/// never its content (a key pasted in the wrong place must not end up in a log).
enum PEMCheck {
    /// Certificates and keys are a few kilobytes; a larger file is not one.
    static let maximumFileSize = 1 << 20

    /// `text` holds at least one PEM certificate and no private key.
    static func certificates(_ text: String, what: String) throws(KafkaError) {
        if looksLikePath(text) {
            throw KafkaError(
                .invalidConfiguration,
                "\(what) is not PEM text but looks like a file path: name files with .file(…) or .files(…)")
        }
        if text.contains("PRIVATE KEY-----") {
            throw KafkaError(
                .invalidConfiguration,
                "\(what) holds a private key where certificates belong: pass the certificate, and the key as the client identity's key"
            )
        }
        guard count("CERTIFICATE", in: text) > 0, text.contains("-----END CERTIFICATE-----") else {
            throw KafkaError(
                .invalidConfiguration,
                "\(what) is not a PEM certificate: expected -----BEGIN CERTIFICATE----- … -----END CERTIFICATE-----")
        }
    }

    /// `text` holds a PEM private key, with a password when it is encrypted.
    static func privateKey(_ text: String, what: String, password: String?) throws(KafkaError) {
        if looksLikePath(text) {
            throw KafkaError(
                .invalidConfiguration, "\(what) is not PEM text but looks like a file path: name files with .files(…)")
        }
        guard text.contains("-----BEGIN "), text.contains("PRIVATE KEY-----"), text.contains("-----END ") else {
            let hint = text.contains("CERTIFICATE-----") ? " (it holds a certificate: the key is the other PEM)" : ""
            throw KafkaError(
                .invalidConfiguration,
                "\(what) is not a PEM private key\(hint): expected -----BEGIN PRIVATE KEY----- … -----END PRIVATE KEY----- (or an RSA, EC or ENCRYPTED one)"
            )
        }
        if password?.isEmpty == true {
            throw KafkaError(.invalidConfiguration, "\(what): keyPassword is empty; pass nil for an unencrypted key")
        }
        let encrypted = text.contains("ENCRYPTED PRIVATE KEY-----") || text.contains("Proc-Type: 4,ENCRYPTED")
        if encrypted && password == nil {
            throw KafkaError(.invalidConfiguration, "\(what) is encrypted: pass its keyPassword")
        }
    }

    /// `ssl.ca.location`: a PEM file, a directory of hashed certificates, or librdkafka's `probe`.
    static func caLocation(_ path: String) throws(KafkaError) {
        if path == "probe" { return }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw KafkaError(
                .invalidConfiguration, "the trusted CA certificates file \(path) does not exist (trust: .file)")
        }
        if isDirectory.boolValue { return }
        try certificates(
            try readFile(path, what: "trusted CA certificates"), what: "the trusted CA certificates file \(path)")
    }

    /// The text of the PEM file at `path`.
    static func readFile(_ path: String, what: String) throws(KafkaError) -> String {
        try requireFile(path, what: what)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KafkaError(.invalidConfiguration, "the \(what) file \(path) cannot be read: check its permissions")
        }
        guard data.count <= maximumFileSize else {
            throw KafkaError(
                .invalidConfiguration,
                "the \(what) file \(path) is \(data.count) bytes: too large for a PEM certificate or key")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// A readable file (not a directory) is at `path`.
    static func requireFile(_ path: String, what: String) throws(KafkaError) {
        var isDirectory: ObjCBool = false
        guard !path.isEmpty, FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw KafkaError(
                .invalidConfiguration, "the \(what) file \(path.isEmpty ? "path is empty" : "\(path) does not exist")")
        }
        guard !isDirectory.boolValue else {
            throw KafkaError(.invalidConfiguration, "the \(what) file \(path) is a directory: name the file")
        }
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw KafkaError(.invalidConfiguration, "the \(what) file \(path) cannot be read: check its permissions")
        }
    }

    /// How many PEM blocks labelled `label` (`CERTIFICATE`) `text` opens.
    static func count(_ label: String, in text: String) -> Int {
        text.ranges(of: "-----BEGIN \(label)-----").count
    }

    /// A single line without PEM armour that starts like a path: the wrong case was picked.
    private static func looksLikePath(_ text: String) -> Bool {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return !trimmed.contains("\n") && !trimmed.contains("-----")
            && (trimmed.hasPrefix("/") || trimmed.hasPrefix("./") || trimmed.hasSuffix(".pem"))
    }
}
