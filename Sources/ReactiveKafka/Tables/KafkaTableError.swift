/// Why a ``KafkaTable`` failed or refused to start.
///
/// Each error says what was wrong and how to fix it; a record that could not be
/// deserialised is named by ``topic``, ``partition`` and ``offset``.
public struct KafkaTableError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure. An open set, like ``KafkaError/Kind``: switch over it with a
    /// `default:` case, since a minor release may add a kind.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        private let name: String

        private init(_ name: String) { self.name = name }

        /// The kind's name, as descriptions and logs show it.
        public var description: String { name }

        /// A record's key or value could not be deserialised (and the table is set to fail).
        public static let deserialization = Kind("deserialization")

        /// The persistent store's file is not a readable SQLite database, or its rows cannot be read back.
        public static let corruptStore = Kind("corruptStore")

        /// The persistent store's file was written by something else, or for another topic or format version.
        public static let foreignStore = Kind("foreignStore")

        /// Reading or writing the persistent store failed (disk full, permissions, …).
        public static let storeFailure = Kind("storeFailure")

        /// The consumer or the cluster failed (see ``KafkaTable/run()``'s underlying ``KafkaError``).
        public static let kafka = Kind("kafka")

        /// The table was closed (or never started) before it was ready.
        public static let closed = Kind("closed")

        /// The table's settings are inconsistent (for example partition-aligned without a group).
        public static let invalidConfiguration = Kind("invalidConfiguration")
    }

    /// What kind of failure.
    public let kind: Kind
    /// What went wrong and what to do about it.
    public let message: String
    /// The topic of the record that failed, for ``Kind/deserialization``.
    public let topic: String?
    /// The partition of the record that failed, for ``Kind/deserialization``.
    public let partition: Int32?
    /// The offset of the record that failed, for ``Kind/deserialization``.
    public let offset: Int64?

    init(_ kind: Kind, _ message: String, topic: String? = nil, partition: Int32? = nil, offset: Int64? = nil) {
        self.kind = kind
        self.message = message
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }

    /// A rendering for logs and error messages.
    public var description: String { "KafkaTableError.\(kind): \(message)" }

    /// A record at `topic`/`partition`/`offset` whose `part` ("key" or "value") did not deserialise.
    static func undeserializable(_ part: String, topic: String, partition: Int32, offset: Int64, _ error: any Error)
        -> Self
    {
        KafkaTableError(
            .deserialization,
            "could not deserialise the \(part) of the record at topic \(topic) partition \(partition) offset \(offset): \(error). "
                + "Fix the deserialiser, or set KafkaTableOptions.onUndeserializable to .skip to count and skip such records",
            topic: topic, partition: partition, offset: offset)
    }

    /// `error` as a table error (kept as is when it already is one).
    static func wrapping(_ error: any Error) -> any Error {
        if error is KafkaTableError || error is CancellationError { return error }
        if let kafka = error as? KafkaError {
            if kafka.kind == .cancelled { return CancellationError() }
            return KafkaTableError(.kafka, "the table's consumer failed: \(kafka)")
        }
        return error
    }
}
