// Settings print and reflect with their secret properties redacted (``SecretProperties``):
// `print(settings)`, `"\(settings)"`, `String(reflecting:)`, `dump` and `Mirror` all go
// through the custom mirror below, so a password set with `withProperty` never reaches a log.

extension ConsumerSettings: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The settings as a mirror whose `properties` has every secret value replaced by
    /// ``SecretProperties/redacted``; `dump` and other reflection use it.
    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "properties": SecretProperties.redacting(properties),
                "keyDeserializer": keyDeserializer,
                "valueDeserializer": valueDeserializer,
                "closeTimeout": closeTimeout,
                "stopTimeout": stopTimeout,
                "commitTimeout": commitTimeout,
                "commitTimeWarning": commitTimeWarning,
                "maxBufferedBytes": maxBufferedBytes,
                "maxBatchSize": maxBatchSize,
                "brokerUnreachableTimeout": brokerUnreachableTimeout as Any,
                "statisticsInterval": statisticsInterval as Any,
                "rebalanceSafeCommitTimeout": rebalanceSafeCommitTimeout as Any,
                "partitionHandlerWarning": partitionHandlerWarning,
                "offsetResetProtection": offsetResetProtection as Any,
            ],
            displayStyle: .struct)
    }

    /// Every field, secrets redacted.
    public var description: String {
        SettingsDescription.render(customMirror, typeName: "ConsumerSettings<\(Key.self), \(Value.self)>")
    }
    /// The same as ``description``: secrets are redacted here too.
    public var debugDescription: String { description }
}

extension ProducerSettings: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The settings as a mirror whose `properties` has every secret value replaced by
    /// ``SecretProperties/redacted``; `dump` and other reflection use it.
    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "properties": SecretProperties.redacting(properties),
                "keySerializer": keySerializer,
                "valueSerializer": valueSerializer,
                "closeTimeout": closeTimeout,
                "parallelism": parallelism,
                "eosCommitInterval": eosCommitInterval,
                "propagatesTraceContext": propagatesTraceContext,
            ],
            displayStyle: .struct)
    }

    /// Every field, secrets redacted.
    public var description: String {
        SettingsDescription.render(customMirror, typeName: "ProducerSettings<\(Key.self), \(Value.self)>")
    }
    /// The same as ``description``: secrets are redacted here too.
    public var debugDescription: String { description }
}

enum SettingsDescription {
    /// `TypeName(label: value, …)` from a settings mirror: librdkafka properties sorted
    /// with secrets redacted, optionals unwrapped.
    static func render(_ mirror: Mirror, typeName: String) -> String {
        let fields = mirror.children.map { child in
            "\(child.label ?? "_"): \(value(child.value))"
        }
        return "\(typeName)(\(fields.joined(separator: ", ")))"
    }

    private static func value(_ value: Any) -> String {
        if let properties = value as? [String: String] { return SecretProperties.describe(properties) }
        let reflected = Mirror(reflecting: value)
        if reflected.displayStyle == .optional {
            guard let wrapped = reflected.children.first?.value else { return "nil" }
            return String(describing: wrapped)
        }
        return String(describing: value)
    }
}
