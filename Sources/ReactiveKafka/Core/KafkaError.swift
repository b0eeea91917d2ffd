import CRdKafka

/// Everything that can go wrong between your code and Kafka, with what to do about it.
///
/// Every error the library raises is a `KafkaError`. Its ``description``
/// says what happened and how to fix it; ``kind`` lets code branch on it.
public struct KafkaError: Error, Sendable, CustomStringConvertible, Equatable {
    /// What kind of failure this is. Switch over it with a `default:` case.
    ///
    /// Kinds are an open set: a minor release may add one. A library built without library
    /// evolution cannot declare a non-frozen enum, and adding a case to a public enum breaks
    /// every exhaustive `switch`, so `Kind` is a struct with a static member per kind (as
    /// swift-nio's and the AWS SDK's error codes are). `case .commitTimeout:` matches a member;
    /// the compiler asks for `default:`.
    ///
    /// ```swift
    /// switch error.kind {
    /// case .notAssigned, .commitTimeout: retryLater()
    /// case .fenced: exit(1)
    /// default: throw error
    /// }
    /// ```
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        private let name: String

        private init(_ name: String) { self.name = name }

        /// The kind's name, as descriptions and logs show it.
        public var description: String { name }

        /// A librdkafka property or a connector setting was rejected.
        public static let invalidConfiguration = Kind("invalidConfiguration")

        /// A record's key or value could not be deserialised.
        public static let deserialization = Kind("deserialization")

        /// A key or value could not be serialised.
        public static let serialization = Kind("serialization")

        /// Committing offsets did not complete within the commit timeout.
        public static let commitTimeout = Kind("commitTimeout")

        /// The broker refused a commit with a non-retriable error.
        public static let commitFailed = Kind("commitFailed")

        /// A produced record could not be delivered.
        public static let deliveryFailed = Kind("deliveryFailed")

        /// librdkafka reported a fatal error; the client cannot continue.
        public static let fatal = Kind("fatal")

        /// No broker could be reached.
        public static let brokerUnreachable = Kind("brokerUnreachable")

        /// The operation needs a client that is still running.
        public static let shutDown = Kind("shutDown")

        /// The stream was used in a way it does not support (for example iterated twice).
        public static let illegalState = Kind("illegalState")

        /// Any other librdkafka error.
        public static let kafka = Kind("kafka")

        /// A transaction was taken over by another producer with the same transactional id.
        public static let fenced = Kind("fenced")

        /// A transaction failed and was aborted; it can be retried.
        public static let transactionAborted = Kind("transactionAborted")

        /// Offsets of partitions this consumer does not own (any more): they were not
        /// committed, and the partitions' next owner reads those records again.
        /// ``KafkaError/partitions`` names them.
        public static let notAssigned = Kind("notAssigned")

        /// The calling task was cancelled before the operation completed.
        public static let cancelled = Kind("cancelled")
    }

    /// What kind of failure this is.
    public let kind: Kind
    /// librdkafka's error code, when librdkafka raised the error.
    public let code: Int32?
    /// What happened and how to fix it.
    public let message: String
    /// The partitions the error is about, where it is about some (``Kind/notAssigned``, refused commits).
    public let partitions: Set<TopicPartition>

    /// An error of `kind` with an explanatory `message`.
    public init(_ kind: Kind, _ message: String, code: Int32? = nil, partitions: Set<TopicPartition> = []) {
        self.kind = kind
        self.message = message
        self.code = code
        self.partitions = partitions
    }

    /// Offsets of `partitions` not committed because this consumer does not own them (any more).
    static func notAssigned(_ partitions: Set<TopicPartition>) -> KafkaError {
        KafkaError(
            .notAssigned,
            "offsets of \(partitions.sorted().map(\.description).joined(separator: ", ")) were not committed: "
                + "these partitions are not assigned to this consumer (revoked in a rebalance, or never assigned); their next owner reads those records again",
            partitions: partitions)
    }

    /// A wait given up because its task was cancelled.
    static let cancelledWhileWaiting = KafkaError(
        .cancelled, "cancelled: the task waiting for the consumer was cancelled")

    /// A rendering for logs and error messages.
    public var description: String {
        if let code, let name = KafkaError.codeName(code) {
            return "KafkaError.\(kind) [\(name)]: \(message)"
        }
        return "KafkaError.\(kind): \(message)"
    }

    /// librdkafka's name for an error code, such as `_QUEUE_FULL` or `NOT_COORDINATOR`.
    public static func codeName(_ code: Int32) -> String? {
        guard let name = rd_kafka_err2name(rd_kafka_resp_err_t(code)) else { return nil }
        return String(cString: name)
    }

    /// An error from a librdkafka response code.
    static func fromCode(_ err: rd_kafka_resp_err_t, _ context: String, kind: Kind = .kafka) -> KafkaError {
        let reason = String(cString: rd_kafka_err2str(err))
        return KafkaError(kind, "\(context): \(reason)", code: Int32(err.rawValue))
    }

    /// An error from a librdkafka error object, which is destroyed.
    static func consuming(_ error: OpaquePointer, _ context: String) -> KafkaError {
        defer { rd_kafka_error_destroy(error) }
        let code = rd_kafka_error_code(error)
        let reason = String(cString: rd_kafka_error_string(error))
        var kind: Kind = rd_kafka_error_is_fatal(error) != 0 ? .fatal : .kafka
        if code == RD_KAFKA_RESP_ERR__FENCED || code == RD_KAFKA_RESP_ERR_PRODUCER_FENCED
            || code == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH
        {
            kind = .fenced
        }
        return KafkaError(kind, "\(context): \(reason)", code: Int32(code.rawValue))
    }

    /// Whether both values are equal.
    public static func == (lhs: KafkaError, rhs: KafkaError) -> Bool {
        lhs.kind == rhs.kind && lhs.code == rhs.code && lhs.message == rhs.message && lhs.partitions == rhs.partitions
    }
}

extension Error {
    /// A ``KafkaError/Kind/cancelled`` error as Swift's `CancellationError`, which is what
    /// iterators and untyped public calls throw when their task is cancelled.
    var asCancellation: any Error {
        if let error = self as? KafkaError, error.kind == .cancelled { return CancellationError() }
        return self
    }
}
