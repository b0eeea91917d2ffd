import CRdKafka

/// A Kafka protocol or librdkafka error code, by name.
public struct KafkaErrorCode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    /// The Kafka protocol's error code (librdkafka's `rd_kafka_resp_err_t`).
    public let rawValue: Int32
    /// The error with Kafka protocol code `rawValue`.
    public init(rawValue: Int32) { self.rawValue = rawValue }
    init(_ err: rd_kafka_resp_err_t) { self.rawValue = Int32(err.rawValue) }

    /// A rendering for logs and error messages.
    public var description: String { KafkaError.codeName(rawValue) ?? "error \(rawValue)" }

    /// Success: no error.
    public static let noError = KafkaErrorCode(RD_KAFKA_RESP_ERR_NO_ERROR)
    /// Kafka's `REQUEST_TIMED_OUT` error.
    public static let requestTimedOut = KafkaErrorCode(RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT)
    /// Kafka's `NOT_COORDINATOR` error.
    public static let notCoordinator = KafkaErrorCode(RD_KAFKA_RESP_ERR_NOT_COORDINATOR)
    /// Kafka's `COORDINATOR_NOT_AVAILABLE` error.
    public static let coordinatorNotAvailable = KafkaErrorCode(RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE)
    /// Kafka's `COORDINATOR_LOAD_IN_PROGRESS` error.
    public static let coordinatorLoadInProgress = KafkaErrorCode(RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS)
    /// Kafka's `NOT_LEADER_FOR_PARTITION` error.
    public static let notLeaderForPartition = KafkaErrorCode(RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION)
    /// Kafka's `LEADER_NOT_AVAILABLE` error.
    public static let leaderNotAvailable = KafkaErrorCode(RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE)
    /// Kafka's `UNKNOWN_TOPIC_OR_PART` error.
    public static let unknownTopicOrPartition = KafkaErrorCode(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
    /// Kafka's `TOPIC_AUTHORIZATION_FAILED` error.
    public static let topicAuthorizationFailed = KafkaErrorCode(RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
    /// Kafka's `GROUP_AUTHORIZATION_FAILED` error.
    public static let groupAuthorizationFailed = KafkaErrorCode(RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED)
    /// Kafka's `REBALANCE_IN_PROGRESS` error.
    public static let rebalanceInProgress = KafkaErrorCode(RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS)
    /// Kafka's `ILLEGAL_GENERATION` error.
    public static let illegalGeneration = KafkaErrorCode(RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION)
    /// Kafka's `UNKNOWN_MEMBER_ID` error.
    public static let unknownMemberId = KafkaErrorCode(RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID)
    /// Kafka's `NOT_ENOUGH_REPLICAS` error.
    public static let notEnoughReplicas = KafkaErrorCode(RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS)
    /// Kafka's `PRODUCER_FENCED` error.
    public static let producerFenced = KafkaErrorCode(RD_KAFKA_RESP_ERR_PRODUCER_FENCED)
    /// Kafka's `INVALID_PRODUCER_EPOCH` error.
    public static let invalidProducerEpoch = KafkaErrorCode(RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH)
    /// Kafka's `CONCURRENT_TRANSACTIONS` error.
    public static let concurrentTransactions = KafkaErrorCode(RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS)
    /// Kafka's `INVALID_TXN_STATE` error.
    public static let invalidTxnState = KafkaErrorCode(RD_KAFKA_RESP_ERR_INVALID_TXN_STATE)
    /// Kafka's `TRANSACTIONAL_ID_AUTHORIZATION_FAILED` error.
    public static let transactionalIdAuthorizationFailed = KafkaErrorCode(
        RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    /// Kafka's `MSG_SIZE_TOO_LARGE` error.
    public static let messageTooLarge = KafkaErrorCode(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
    /// Kafka's `OFFSET_OUT_OF_RANGE` error.
    public static let offsetOutOfRange = KafkaErrorCode(RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE)
    /// Kafka's `OUT_OF_ORDER_SEQUENCE_NUMBER` error.
    public static let outOfOrderSequenceNumber = KafkaErrorCode(RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER)
}
