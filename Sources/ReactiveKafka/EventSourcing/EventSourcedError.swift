/// Why an event-sourced stage failed.
public struct EventSourcedError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public enum Kind: Sendable, Hashable {
        /// The settings cannot work; the message says which and how to fix it.
        case invalidSettings
        /// A changelog record or an input has no key, or its key or event cannot be decoded.
        case undeserializable
        /// The changelog topic cannot be read (missing, too few partitions, broker failure).
        case changelog
        /// The snapshot file is not one this stage wrote (another format or changelog topic).
        case foreignStore
        /// The snapshot file cannot be read, or a snapshot in it cannot be decoded.
        case corruptStore
        /// Reading or writing the snapshot file failed.
        case storeFailure
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
