import CRdKafka
import Configuration

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The names of every configuration property the linked librdkafka knows,
/// global and topic-level, read from librdkafka's own property table.
///
/// swift-configuration cannot list the keys under a scope (providers answer
/// point look-ups only), so the `kafka-clients` section is read by looking up
/// each name librdkafka knows. Asking librdkafka rather than keeping a list
/// means a newer librdkafka's properties work without a change here.
enum KafkaClientPropertyNames {
    /// Every property name, sorted; computed once.
    static let all: [String] = load()

    private static func load() -> [String] {
        var buffer: UnsafeMutablePointer<CChar>? = nil
        var size = 0
        guard let stream = open_memstream(&buffer, &size) else { return [] }
        rd_kafka_conf_properties_show(stream)
        fclose(stream)
        guard let buffer else { return [] }
        defer { free(buffer) }
        return parse(table: String(cString: buffer))
    }

    /// The property names in `rd_kafka_conf_properties_show`'s markdown tables:
    /// the first cell of each row, skipping headings, header rows and separators.
    static func parse(table: String) -> [String] {
        var names = Set<String>()
        for line in table.split(separator: "\n") {
            guard let bar = line.firstIndex(of: "|") else { continue }
            let name = line[..<bar].trimmingConfigWhitespace()
            guard let first = name.first, first.isLetter, first.isLowercase,
                name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "_" })
            else { continue }
            names.insert(String(name))
        }
        return names.sorted()
    }

}

extension SettingsConfigReader {
    /// The `kafka-clients` section as librdkafka properties, passed through
    /// unchanged: `kafka-clients.bootstrap.servers` becomes `bootstrap.servers`.
    ///
    /// Every property librdkafka knows is looked up; names it does not know
    /// (a plugin's properties, say) are read when listed under `kafka-clients-keys`
    /// (a list, or a comma-separated string). Numbers and booleans become text.
    func kafkaClients() -> [String: String] {
        var names = KafkaClientPropertyNames.all
        let listed =
            snapshot.stringArray(forKey: "kafka-clients-keys")
            ?? snapshot.string(forKey: "kafka-clients-keys").map { $0.split(separator: ",").map(String.init) } ?? []
        names += listed.map { String($0.trimmingConfigWhitespace()) }.filter { !$0.isEmpty }
        var properties: [String: String] = [:]
        for name in names where properties[name] == nil {
            if let value = raw("kafka-clients." + name, isSecret: SecretProperties.isSecret(name)) {
                properties[name] = value.text
            }
        }
        return properties
    }
}
