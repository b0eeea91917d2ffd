import Configuration
import Foundation
import Synchronization
import Testing

@testable import ReactiveKafka

/// The configuration reference article (`ReactiveKafka.docc/ConfigurationReference.md`) against the
/// configuration readers: every key a reader looks up is in the article's table for its section, every key
/// in the table is looked up, and every default in the table, loaded through the reader, gives the same
/// settings as no key at all (which the code's defaults give).
@Suite struct ConfigurationReferenceTests {
    @Test func consumerTableMatchesTheReader() throws {
        let rows = try Self.rows(section: "reactive-kafka.consumer")
        let read = Self.keysRead(section: "reactive-kafka.consumer") { config in
            _ = try? ConsumerSettings(config: config)
        }
        #expect(Set(rows.map(\.key)) == read, "article keys vs keys ConsumerSettings(config:) reads")
        #expect(rows.count == Set(rows.map(\.key)).count, "a key is listed twice")

        let none = try Self.consumer([:])
        #expect(Self.sameConsumer(none, ConsumerSettings()), "defaults loaded from no keys differ from the code's")
        for row in rows {
            if let value = row.defaultValue {
                let loaded = try Self.consumer([row.key: value])
                #expect(
                    Self.sameConsumer(loaded, none), "consumer \(row.key): the article's default `\(value)` differs")
            } else {
                try Self.expectUnsetByDefault(row.key, consumer: none)
            }
        }
    }

    @Test func producerTableMatchesTheReader() throws {
        let rows = try Self.rows(section: "reactive-kafka.producer")
        let read = Self.keysRead(section: "reactive-kafka.producer") { config in
            _ = try? ProducerSettings(config: config)
        }
        #expect(Set(rows.map(\.key)) == read, "article keys vs keys ProducerSettings(config:) reads")
        #expect(rows.count == Set(rows.map(\.key)).count, "a key is listed twice")

        let none = try Self.producer([:])
        #expect(Self.sameProducer(none, ProducerSettings()), "defaults loaded from no keys differ from the code's")
        for row in rows {
            if let value = row.defaultValue {
                let loaded = try Self.producer([row.key: value])
                #expect(
                    Self.sameProducer(loaded, none), "producer \(row.key): the article's default `\(value)` differs")
            } else {
                try Self.expectUnsetByDefault(row.key, producer: none)
            }
        }
    }

    @Test func committerTableMatchesTheReader() throws {
        let rows = try Self.rows(section: "reactive-kafka.committer")
        let read = Self.keysRead(section: "reactive-kafka.committer") { config in
            _ = try? CommitterSettings(config: config)
        }
        #expect(Set(rows.map(\.key)) == read, "article keys vs keys CommitterSettings(config:) reads")
        #expect(rows.count == Set(rows.map(\.key)).count, "a key is listed twice")

        let none = try Self.committer([:])
        #expect(none == CommitterSettings(), "defaults loaded from no keys differ from the code's")
        for row in rows {
            let value = try #require(row.defaultValue, "committer \(row.key) has no default in the article")
            #expect(
                try Self.committer([row.key: value]) == none, "committer \(row.key): the default `\(value)` differs")
        }
    }

    /// The check is only as good as its parsing: a wrong default in an article-shaped table is caught.
    @Test func aWrongDefaultIsCaught() throws {
        let table = """
            ### Consumer: reactive-kafka.consumer

            | Key | Setting | Default | Values |
            |---|---|---|---|
            | `close-timeout` | closing | `30s` | duration |
            """
        let rows = try Self.rows(section: "reactive-kafka.consumer", in: table)
        #expect(rows.map(\.key) == ["close-timeout"])
        let loaded = try Self.consumer(["close-timeout": try #require(rows.first?.defaultValue)])
        #expect(!Self.sameConsumer(loaded, try Self.consumer([:])))
    }

    // MARK: The article

    struct Row: Equatable {
        /// The key relative to its section, `kafka-clients.<property>` for pass-through properties.
        var key: String
        /// The default as written in the article, or `nil` for "none".
        var defaultValue: String?
    }

    static let articleURL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/ReactiveKafka/ReactiveKafka.docc/ConfigurationReference.md")

    /// The rows of the first table after the heading that names `section`.
    static func rows(section: String, in article: String? = nil) throws -> [Row] {
        let text = try article ?? String(contentsOf: articleURL, encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let heading = try #require(
            lines.firstIndex { $0.hasPrefix("#") && $0.hasSuffix(": \(section)") },
            "no heading for \(section) in the configuration reference")
        let header = try #require(
            lines[heading...].firstIndex { $0.hasPrefix("| Key |") }, "no key table under \(section)")
        var rows: [Row] = []
        for line in lines[(header + 2)...] {
            guard line.hasPrefix("|") else { break }
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).dropFirst()
                .map { $0.trimmingCharacters(in: .whitespaces) }
            let key = try #require(Self.codeVoice(cells[0]), "a key that is not in code voice: \(line)")
            let defaultCell = cells[2]
            if defaultCell == "none" {
                rows.append(Row(key: key, defaultValue: nil))
            } else {
                let value = try #require(Self.codeVoice(defaultCell), "a default neither `value` nor none: \(line)")
                rows.append(Row(key: key, defaultValue: value))
            }
        }
        return rows
    }

    private static func codeVoice(_ cell: String) -> String? {
        guard cell.count > 2, cell.hasPrefix("`"), cell.hasSuffix("`"), !cell.hasPrefix("``") else { return nil }
        return String(cell.dropFirst().dropLast())
    }

    // MARK: The readers

    /// Records the keys a reader looks up.
    final class KeyRecorder: AccessReporter, Sendable {
        let keys = Mutex<Set<String>>([])
        func report(_ event: AccessEvent) {
            let key = event.metadata.key.components.joined(separator: ".")
            keys.withLock { _ = $0.insert(key) }
        }
    }

    /// The keys `load` looks up under `section`, relative to it, with librdkafka's property names
    /// under `kafka-clients.` folded into `kafka-clients.<property>`.
    static func keysRead(section: String, _ load: (ConfigReader) -> Void) -> Set<String> {
        let recorder = KeyRecorder()
        let config = ConfigReader(provider: InMemoryProvider(values: [:]), accessReporter: recorder)
        load(config.scoped(to: ConfigKey(section)))
        let prefix = section + "."
        return Set(
            recorder.keys.withLock { $0 }.compactMap { key -> String? in
                guard key.hasPrefix(prefix) else { return nil }
                let relative = String(key.dropFirst(prefix.count))
                return relative.hasPrefix("kafka-clients.") ? "kafka-clients.<property>" : relative
            })
    }

    static func reader(_ section: String, _ values: [String: String]) -> ConfigReader {
        var entries: [AbsoluteConfigKey: ConfigValue] = [:]
        for (key, value) in values {
            entries[AbsoluteConfigKey(ConfigKey(section + "." + key))] = ConfigValue(.string(value), isSecret: false)
        }
        return ConfigReader(provider: InMemoryProvider(values: entries)).scoped(to: ConfigKey(section))
    }

    static func consumer(_ values: [String: String]) throws -> ConsumerSettings<KafkaBytes, KafkaBytes> {
        try ConsumerSettings(config: reader("reactive-kafka.consumer", values))
    }

    static func producer(_ values: [String: String]) throws -> ProducerSettings<KafkaBytes, KafkaBytes> {
        try ProducerSettings(config: reader("reactive-kafka.producer", values))
    }

    static func committer(_ values: [String: String]) throws -> CommitterSettings {
        try CommitterSettings(config: reader("reactive-kafka.committer", values))
    }

    /// Every field: the description renders all but the metrics settings, compared on their own.
    static func sameConsumer(
        _ a: ConsumerSettings<KafkaBytes, KafkaBytes>, _ b: ConsumerSettings<KafkaBytes, KafkaBytes>
    )
        -> Bool
    {
        a.description == b.description && a.metrics == b.metrics && a.stallThreshold == b.stallThreshold
    }

    static func sameProducer(
        _ a: ProducerSettings<KafkaBytes, KafkaBytes>, _ b: ProducerSettings<KafkaBytes, KafkaBytes>
    )
        -> Bool
    {
        a.description == b.description && a.metrics == b.metrics
    }

    /// A key whose default the article gives as "none": what that means for its setting.
    static func expectUnsetByDefault(
        _ key: String, consumer: ConsumerSettings<KafkaBytes, KafkaBytes>? = nil,
        producer: ProducerSettings<KafkaBytes, KafkaBytes>? = nil
    ) throws {
        switch key {
        case "offset-reset-protection.offset-threshold", "offset-reset-protection.time-threshold":
            #expect(try #require(consumer).offsetResetProtection == nil, "\(key) is on by default")
        case "kafka-clients.<property>", "kafka-clients-keys":
            #expect((consumer?.properties ?? producer?.properties)?.isEmpty == true, "properties set by default")
        default:
            Issue.record("\(key) has no default in the article: give one, or say here what none means for it")
        }
    }
}
