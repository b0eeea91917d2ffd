/// Kafka's rule for topic names, checked before a name reaches a broker (some
/// brokers, like the embedded one, would silently create whatever they are asked about).
package enum TopicName {
    /// Throws ``KafkaError/Kind/invalidConfiguration`` unless `name` is a valid topic name.
    package static func validate(_ name: String) throws(KafkaError) {
        let allowed = name.utf8.allSatisfy { c in
            (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39) || c == 0x2E || c == 0x5F
                || c == 0x2D
        }
        guard !name.isEmpty, name.utf8.count <= 249, allowed, name != ".", name != ".." else {
            throw KafkaError(
                .invalidConfiguration,
                "\"\(name)\" is not a valid topic name: use 1–249 characters from a–z, A–Z, 0–9, '.', '_' and '-'")
        }
    }
}
