import CRdKafka

/// A failed transactional call, classified as librdkafka classifies it
/// (`rd_kafka_error_is_fatal` / `_txn_requires_abort` / `_is_retriable`).
struct TransactionError: Error, Equatable, Sendable {
    var kafkaError: KafkaError
    var isFatal: Bool
    var isAbortable: Bool
    var isRetriable: Bool

    /// Error codes that mean another producer with the same transactional id took over.
    static func isFencing(_ code: rd_kafka_resp_err_t) -> Bool {
        code == RD_KAFKA_RESP_ERR_PRODUCER_FENCED || code == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH
            || code == RD_KAFKA_RESP_ERR__FENCED
    }

    /// Classifies and destroys `error`, returned by the transactional call `call` of
    /// producer `rk`. A fatal error is reported with its original code (librdkafka's
    /// `rd_kafka_fatal_error`), so that fencing is recognised whichever call saw it first.
    static func consuming(_ error: OpaquePointer, call: String, transactionalId: String, rk: OpaquePointer)
        -> TransactionError
    {
        defer { rd_kafka_error_destroy(error) }
        var code = rd_kafka_error_code(error)
        var reason = String(cString: rd_kafka_error_string(error))
        let isFatal = rd_kafka_error_is_fatal(error) != 0
        if isFatal || code == RD_KAFKA_RESP_ERR__FATAL {
            var buffer = [CChar](repeating: 0, count: 512)
            let original = rd_kafka_fatal_error(rk, &buffer, buffer.count)
            if original != RD_KAFKA_RESP_ERR_NO_ERROR {
                code = original
                reason = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            }
        }
        return classify(
            code: code, reason: reason, call: call, transactionalId: transactionalId,
            isFatal: isFatal || code == RD_KAFKA_RESP_ERR__FATAL,
            isAbortable: rd_kafka_error_txn_requires_abort(error) != 0,
            isRetriable: rd_kafka_error_is_retriable(error) != 0)
    }

    /// The typed error for a failed transactional call.
    static func classify(
        code: rd_kafka_resp_err_t, reason: String, call: String, transactionalId: String,
        isFatal: Bool, isAbortable: Bool, isRetriable: Bool
    ) -> TransactionError {
        let raw = Int32(code.rawValue)
        let name = KafkaError.codeName(raw) ?? "error \(raw)"
        let kafkaError: KafkaError
        if isFencing(code) {
            kafkaError = fenced(
                transactionalId: transactionalId, detail: "\(call) failed with \(name): \(reason)", code: raw)
        } else if isFatal {
            kafkaError = KafkaError(
                .fatal,
                "the transactional producer '\(transactionalId)' hit a fatal error in \(call): \(reason). It cannot continue: restart the stream with a new producer",
                code: raw)
        } else if isAbortable {
            kafkaError = KafkaError(
                .transactionAborted,
                "the transaction of '\(transactionalId)' must be aborted (\(call) failed with \(name): \(reason)); nothing of it is committed, it can be retried",
                code: raw)
        } else {
            kafkaError = KafkaError(
                .kafka, "\(call) of transactional producer '\(transactionalId)' failed with \(name): \(reason)",
                code: raw)
        }
        // A fenced producer can never recover, whatever flags librdkafka set.
        let fencedNow = isFencing(code)
        return TransactionError(
            kafkaError: kafkaError, isFatal: isFatal || fencedNow, isAbortable: isAbortable && !fencedNow,
            isRetriable: isRetriable && !fencedNow)
    }

    /// The same failure of a `send_offsets_to_transaction` of `partitions`' offsets, naming them:
    /// none of them is committed, and when the group moved them to another member (a stale
    /// generation or member id) that member reads them again.
    func refusing(_ partitions: Set<TopicPartition>) -> TransactionError {
        guard !partitions.isEmpty, kafkaError.kind != .shutDown, kafkaError.kind != .fenced else { return self }
        let code = kafkaError.code.map { rd_kafka_resp_err_t($0) }
        let moved = code.map(Self.meansPartitionsMoved) ?? false
        let list = partitions.sorted().map(\.description).joined(separator: ", ")
        let detail =
            moved
            ? "the offsets of \(list) were refused: they carry a member or generation of the group that a rebalance replaced (their partitions may have moved to another member): \(kafkaError.message)"
            : "the offsets of \(list) were not added to the transaction: \(kafkaError.message)"
        var named = self
        named.kafkaError = KafkaError(kafkaError.kind, detail, code: kafkaError.code, partitions: partitions)
        return named
    }

    /// Group errors by which the coordinator says the sender is not (any more) the member
    /// the partitions are assigned to.
    static func meansPartitionsMoved(_ code: rd_kafka_resp_err_t) -> Bool {
        code == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION || code == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID
            || code == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID || code == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS
    }

    /// The error of a producer that another instance with the same transactional id fenced.
    static func fenced(transactionalId: String, detail: String, code: Int32?) -> KafkaError {
        KafkaError(
            .fenced,
            "another instance with the same transactional id '\(transactionalId)' took over (\(detail)). "
                + "This producer was fenced and stops; its open transaction is aborted by the broker. "
                + "Run one instance per transactional id, or give each its own",
            code: code)
    }
}
