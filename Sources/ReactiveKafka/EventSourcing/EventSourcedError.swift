/// Why an event-sourced stage failed.
public struct EventSourcedError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure. An open set, like ``KafkaError/Kind``: switch over it with a
    /// `default:` case, since a minor release may add a kind.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        private let name: String

        private init(_ name: String) { self.name = name }

        /// The kind's name, as descriptions and logs show it.
        public var description: String { name }

        /// The settings cannot work; the message says which and how to fix it.
        public static let invalidSettings = Kind("invalidSettings")

        /// A changelog record or an input has no key, or its key or event cannot be decoded.
        public static let undeserializable = Kind("undeserializable")

        /// The changelog topic cannot be read (missing, too few partitions, broker failure).
        public static let changelog = Kind("changelog")

        /// The snapshot file is not one this stage wrote (another format or changelog topic).
        public static let foreignStore = Kind("foreignStore")

        /// The snapshot file cannot be read, or a snapshot in it cannot be decoded.
        public static let corruptStore = Kind("corruptStore")

        /// Reading or writing the snapshot file failed.
        public static let storeFailure = Kind("storeFailure")
    }

    /// The kind of failure.
    public let kind: Kind
    /// What happened and what to do about it.
    public let message: String

    init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The kind and message.
    public var description: String { "EventSourcedError(\(kind)): \(message)" }
}
