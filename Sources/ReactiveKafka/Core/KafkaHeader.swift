/// A record header: a name and optional bytes.
public struct KafkaHeader: Sendable, Hashable {
    /// The header's name.
    public var key: String
    /// The header's value; `nil` is a null value.
    public var value: KafkaBytes?

    /// A header named `key` with `value`.
    public init(key: String, value: KafkaBytes?) {
        self.key = key
        self.value = value
    }
}

/// When a record was created or appended to the log.
public struct KafkaTimestamp: Sendable, Hashable, CustomStringConvertible {
    /// Which clock the timestamp comes from.
    public enum Kind: Sendable, Hashable {
        /// Set by the producer.
        case createTime
        /// Set by the broker when it appended the record.
        case logAppendTime
    }

    /// Milliseconds since the Unix epoch.
    public var milliseconds: Int64
    /// Which clock set it.
    public var kind: Kind

    /// A timestamp of `milliseconds` since the epoch.
    public init(milliseconds: Int64, kind: Kind = .createTime) {
        self.milliseconds = milliseconds
        self.kind = kind
    }

    /// A rendering for logs and error messages.
    public var description: String { "\(milliseconds)ms(\(kind))" }
}
