import CRdKafka

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// librdkafka's log output, with secrets scrubbed out.
///
/// librdkafka quotes configuration values in some log lines (the path of a
/// keystore it cannot open, the rest of a malformed `sasl.oauthbearer.config`),
/// so every configuration the connector builds logs through this instead of
/// librdkafka's default logger. Lines look exactly like the default's
/// (`%LEVEL|SECONDS.MILLIS|FACILITY|CLIENT| MESSAGE` on stderr), minus the
/// values of the client's secret properties (``SecretProperties``).
enum SecretScrubbingLog {
    /// Installs the scrubbing logger on `conf`.
    static func install(on conf: OpaquePointer) {
        rd_kafka_conf_set_log_cb(conf, secretScrubbingLogCallback)
    }

    /// The line librdkafka's default logger would print, with the secret values
    /// configured in client `rk` replaced by ``SecretProperties/redacted``.
    static func line(
        client rk: OpaquePointer?, level: Int32, facility: String, message: String, seconds: Int, milliseconds: Int
    ) -> String {
        let name = rk.flatMap { rd_kafka_name($0) }.map { String(cString: $0) } ?? ""
        let scrubbed = rk.map { SecretProperties.scrub(message, removing: secretValues(of: $0)) } ?? message
        let millis = String(milliseconds)
        let stamp = "\(seconds)." + String(repeating: "0", count: max(0, 3 - millis.count)) + millis
        return "%\(level)|\(stamp)|\(facility)|\(name)| \(scrubbed)\n"
    }

    /// The values of client `rk`'s secret properties, read back from its configuration
    /// (a misspelt or unknown key never gets this far: librdkafka refused it).
    static func secretValues(of rk: OpaquePointer) -> [String] {
        guard let conf = rd_kafka_conf(rk) else { return [] }
        return SecretProperties.knownSecretNames.compactMap { name in
            var size = 0
            // The first call asks for the size: a PEM key can be kilobytes long.
            guard rd_kafka_conf_get(conf, name, nil, &size) == RD_KAFKA_CONF_OK, size > 1 else { return nil }
            var buffer = [CChar](repeating: 0, count: size)
            guard rd_kafka_conf_get(conf, name, &buffer, &size) == RD_KAFKA_CONF_OK else { return nil }
            return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        }
    }
}

/// librdkafka's log callback (any librdkafka thread): writes the scrubbed line to stderr in one
/// `write(2)`, so that lines from several threads do not interleave.
private func secretScrubbingLogCallback(
    _ rk: OpaquePointer?, _ level: Int32, _ facility: UnsafePointer<CChar>?, _ message: UnsafePointer<CChar>?
) {
    // gettimeofday: the wall clock librdkafka's own logger prints, with one signature on Linux and Darwin.
    var now = timeval()
    gettimeofday(&now, nil)
    var line = SecretScrubbingLog.line(
        client: rk, level: level, facility: facility.map { String(cString: $0) } ?? "",
        message: message.map { String(cString: $0) } ?? "", seconds: Int(now.tv_sec),
        milliseconds: Int(now.tv_usec) / 1000)
    line.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
}
