import Configuration

// Loading settings from swift-configuration, the way Alpakka reads
// `akka.kafka.consumer`, `akka.kafka.producer` and `akka.kafka.committer`.
//
// Recommended roots (pass a reader scoped to them):
//
//     let config = ConfigReader(providers: [EnvironmentVariablesProvider(), jsonFileProvider])
//     let consumer = try ConsumerSettings(config: config.scoped(to: "reactive-kafka.consumer"))
//     let producer = try ProducerSettings(config: config.scoped(to: "reactive-kafka.producer"))
//     let committer = try CommitterSettings(config: config.scoped(to: "reactive-kafka.committer"))
//
// Keys are kebab-case. Missing keys keep the defaults. Every bad value is a
// `KafkaError(.invalidConfiguration, …)` naming the full key.

/// A settings loader's view of one ``ConfigReader`` scope: reads a consistent
/// snapshot, accepts values however the provider typed them (a JSON number, a
/// YAML scalar or an environment variable's string), and names the full key
/// in every error.
struct SettingsConfigReader {
    /// A value as the provider holds it.
    enum Raw {
        case string(String)
        case int(Int)
        case double(Double)
        case bool(Bool)

        /// The value as text, the way librdkafka wants every property.
        var text: String {
            switch self {
            case .string(let value): value
            case .int(let value): String(value)
            case .double(let value): String(value)
            case .bool(let value): String(value)
            }
        }
    }

    /// One snapshot for all reads, so a reloading provider cannot mix old and new values.
    let snapshot: ConfigSnapshotReader
    /// The scope the caller gave, `reactive-kafka.consumer.` style, or empty when unknown.
    let prefix: String

    init(_ config: ConfigReader) {
        snapshot = config.snapshot()
        prefix = Self.keyPrefix(of: config).map { $0 + "." } ?? ""
    }

    /// The scope of `config`. ConfigReader keeps it internal but prints it in its
    /// description (`ConfigReader[keyPrefix: a.b, providers: …]`); if that format
    /// ever changes, errors just name the relative key.
    static func keyPrefix(of config: ConfigReader) -> String? {
        let description = String(describing: config)
        let marker = "ConfigReader[keyPrefix: "
        guard description.hasPrefix(marker), let end = description.firstRange(of: ", providers: ") else { return nil }
        let prefix = description[description.index(description.startIndex, offsetBy: marker.count)..<end.lowerBound]
        return prefix.isEmpty ? nil : String(prefix)
    }

    /// The key as the user would write it, for error messages.
    func fullKey(_ key: String) -> String { prefix + key }

    /// The value under `key`, whatever its type, or `nil` when absent.
    ///
    /// ConfigReader's non-throwing getters answer `nil` both when a key is
    /// missing and when the provider holds another type, so each type is tried in turn.
    func raw(_ key: String, isSecret: Bool = false) -> Raw? {
        let configKey = ConfigKey(key)
        if let value = snapshot.string(forKey: configKey, isSecret: isSecret) { return .string(value) }
        if let value = snapshot.int(forKey: configKey, isSecret: isSecret) { return .int(value) }
        if let value = snapshot.double(forKey: configKey, isSecret: isSecret) { return .double(value) }
        if let value = snapshot.bool(forKey: configKey, isSecret: isSecret) { return .bool(value) }
        return nil
    }

    func invalid(_ key: String, _ value: Raw, _ problem: String) -> KafkaError {
        KafkaError(.invalidConfiguration, "\(fullKey(key)): \"\(value.text)\" \(problem)")
    }

    /// A duration: `"30s"`, `"500ms"`, `"2m"`, or integer milliseconds; `nil` when absent.
    func duration(_ key: String, positive: Bool = false) throws(KafkaError) -> Duration? {
        guard let value = raw(key) else { return nil }
        let duration: Duration
        do throws(ConfigDurationError) {
            switch value {
            case .string(let text): duration = try ConfigDurationParser.parse(text)
            case .int(let milliseconds): duration = try ConfigDurationParser.milliseconds(milliseconds)
            case .double, .bool: throw .notADuration
            }
        } catch {
            throw invalid(key, value, Self.explain(error))
        }
        if positive && duration == .zero {
            throw invalid(key, value, "must be greater than zero")
        }
        return duration
    }

    /// A duration that may be switched off with `"off"`: `.some(nil)` for off,
    /// `nil` when absent. `offMeans` completes the hint in errors ("off to disable").
    func optionalDuration(_ key: String, offMeans: String) throws(KafkaError) -> Duration?? {
        guard let value = raw(key) else { return nil }
        if case .string(let text) = value, text.trimmingConfigWhitespace().lowercased() == "off" {
            return .some(nil)
        }
        do {
            guard let duration = try self.duration(key, positive: true) else { return nil }
            return .some(duration)
        } catch {
            throw KafkaError(.invalidConfiguration, "\(error.message), or off \(offMeans)")
        }
    }

    static func explain(_ error: ConfigDurationError) -> String {
        switch error {
        case .notADuration: "is not a duration; use e.g. 30s, 500ms or 2m"
        case .negative: "is negative; durations must be zero or more, e.g. 30s"
        case .tooLarge: "is too long; durations must be under 292 years"
        }
    }

    /// A whole number of at least `minimum`; `nil` when absent.
    func int(_ key: String, minimum: Int) throws(KafkaError) -> Int? {
        guard let value = raw(key) else { return nil }
        let number: Int
        switch value {
        case .int(let int): number = int
        case .string(let text):
            guard let int = Int(text.trimmingConfigWhitespace()) else {
                throw invalid(key, value, "is not a whole number")
            }
            number = int
        case .double, .bool:
            throw invalid(key, value, "is not a whole number")
        }
        guard number >= minimum else { throw invalid(key, value, "must be at least \(minimum)") }
        return number
    }

    /// `metrics`: `on`, `per-topic` (per-partition attributes off) or `off`.
    func metrics() throws(KafkaError) -> KafkaMetricsSettings? {
        var perTopic = KafkaMetricsSettings()
        perTopic.perPartitionLabels = false
        return try choice("metrics", ["on": KafkaMetricsSettings(), "per-topic": perTopic, "off": .disabled])
    }

    /// `true` or `false` (a boolean, or its text in any case); `nil` when absent.
    func bool(_ key: String) throws(KafkaError) -> Bool? {
        guard let value = raw(key) else { return nil }
        if case .bool(let bool) = value { return bool }
        switch value.text.trimmingConfigWhitespace().lowercased() {
        case "true": return true
        case "false": return false
        default: throw invalid(key, value, "is not true or false")
        }
    }

    /// One of `choices`, matched ignoring case, `-` and `_` (so `WaitForAck`,
    /// `wait-for-ack` and `WAIT_FOR_ACK` are the same); `nil` when absent.
    func choice<T>(_ key: String, _ choices: KeyValuePairs<String, T>) throws(KafkaError) -> T? {
        guard let value = raw(key) else { return nil }
        let wanted = Self.normalized(value.text)
        if let match = choices.first(where: { Self.normalized($0.key) == wanted }) { return match.value }
        let names = choices.map(\.key).joined(separator: " or ")
        throw invalid(key, value, "is not one of \(names)")
    }

    private static func normalized(_ name: String) -> String {
        String(name.trimmingConfigWhitespace().lowercased().filter { $0 != "-" && $0 != "_" })
    }

    /// Runs a settings type's own `validate()`, adding where the settings came from.
    func validated(_ validate: () throws(KafkaError) -> Void) throws(KafkaError) {
        do {
            try validate()
        } catch {
            let origin = prefix.isEmpty ? "configuration" : "configuration under \(prefix.dropLast())"
            throw KafkaError(error.kind, "\(error.message) (settings loaded from \(origin))", code: error.code)
        }
    }
}
