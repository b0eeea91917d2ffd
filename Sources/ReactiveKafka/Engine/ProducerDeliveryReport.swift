import CRdKafka

/// One delivery report, copied out of a librdkafka DR event so that the event
/// can be destroyed (freeing queue space) before receivers look at it.
///
/// Plain data (no reference-counted field): the poll thread copies one per record, and a
/// field such as an optional reason string made each copy and destroy a runtime call.
@usableFromInline
struct DeliveryReport: Sendable {
    /// The receiver that produced the record (``ProducerOpaque/receiver``).
    @usableFromInline var receiver: UInt16
    /// The receiver-defined part of the message opaque (``ProducerOpaque/token``).
    @usableFromInline var token: UInt64
    /// librdkafka's error code; `RD_KAFKA_RESP_ERR_NO_ERROR` when delivered.
    @usableFromInline var error: rd_kafka_resp_err_t
    /// The partition written to (`-1` if the record never got one).
    @usableFromInline var partition: Int32
    /// The offset the broker assigned (`-1` if unknown).
    @usableFromInline var offset: Int64
    /// The stored timestamp, if librdkafka knows it.
    @usableFromInline var timestamp: KafkaTimestamp?

    @inlinable
    var succeeded: Bool { error == RD_KAFKA_RESP_ERR_NO_ERROR }

    @inlinable
    init(
        receiver: UInt16 = 0, token: UInt64, error: rd_kafka_resp_err_t, partition: Int32, offset: Int64,
        timestamp: KafkaTimestamp?
    ) {
        self.receiver = receiver
        self.token = token
        self.error = error
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
    }

    /// Copies the fields of a message from a DR event.
    init(_ message: UnsafePointer<rd_kafka_message_t>) {
        let m = message.pointee
        let opaque = ProducerOpaque(UInt64(UInt(bitPattern: m._private)))
        var type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let ts = rd_kafka_message_timestamp(message, &type)
        let timestamp: KafkaTimestamp? =
            switch type {
            case RD_KAFKA_TIMESTAMP_CREATE_TIME: KafkaTimestamp(milliseconds: ts, kind: .createTime)
            case RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME: KafkaTimestamp(milliseconds: ts, kind: .logAppendTime)
            default: nil
            }
        self.init(
            receiver: opaque.receiver, token: opaque.token, error: m.err, partition: m.partition, offset: m.offset,
            timestamp: timestamp)
    }

    /// The typed error for a failed delivery of a record to `topic`.
    @usableFromInline
    func failure(topic: String) -> KafkaError {
        let code = Int32(error.rawValue)
        let name = KafkaError.codeName(code) ?? "error \(code)"
        // librdkafka's text for the code. Not rd_kafka_message_errstr: for a produced message
        // it returns the record's payload (the header says it must not be used with the producer).
        let reasonText = String(cString: rd_kafka_err2str(error))
        if error == RD_KAFKA_RESP_ERR__FATAL {
            return KafkaError(
                .fatal,
                "record to \(topic) not delivered: the producer hit a fatal error (\(reasonText)); close it and create a new one",
                code: code)
        }
        if error == RD_KAFKA_RESP_ERR__PURGE_QUEUE || error == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT {
            return KafkaError(
                .shutDown,
                "record to \(topic) not acknowledged before the producer closed (closeTimeout elapsed): it may or may not have been written",
                code: code)
        }
        let where_ = partition >= 0 ? "\(topic)-\(partition)" : "\(topic) (no partition assigned)"
        return KafkaError(
            .deliveryFailed,
            "delivery of a record to \(where_) failed with \(name): \(reasonText). "
                + "librdkafka gave up on it (non-retriable error, or message.timeout.ms / delivery.timeout.ms elapsed): "
                + "check that the topic and partition exist, the record fits max.message.bytes and the producer is authorised",
            code: code
        )
    }
}

/// Receives the delivery reports of the records it produced. Registered with a
/// ``ProducerEngine`` under a receiver id that is part of each record's opaque.
///
/// Called on the engine's poll thread: implementations must not block, and
/// should take their lock once per call, not once per report.
@usableFromInline
protocol DeliveryReceiver: AnyObject, Sendable {
    /// Reports for records this receiver produced, in the order librdkafka
    /// delivered them (per partition, the order they were produced).
    func deliver(_ reports: UnsafeBufferPointer<DeliveryReport>)
    /// The engine can no longer deliver anything (fatal error, or closed with
    /// records still unacknowledged): fail whatever is outstanding with `error`.
    func fail(_ error: KafkaError)
}

/// The per-record opaque handed to librdkafka: which receiver produced the
/// record (16 bits) and a receiver-defined token (48 bits), so a record needs no
/// allocation to be matched with its delivery report.
@usableFromInline
struct ProducerOpaque: Hashable, Sendable {
    @inlinable static var tokenBits: UInt64 { 48 }
    @inlinable static var tokenMask: UInt64 { (1 << tokenBits) - 1 }

    @usableFromInline let rawValue: UInt64

    @inlinable
    init(_ rawValue: UInt64) { self.rawValue = rawValue }

    @inlinable
    init(receiver: UInt16, token: UInt64) {
        rawValue = UInt64(receiver) << Self.tokenBits | (token & Self.tokenMask)
    }

    @inlinable var receiver: UInt16 { UInt16(truncatingIfNeeded: rawValue >> Self.tokenBits) }
    @inlinable var token: UInt64 { rawValue & Self.tokenMask }
    @inlinable var pointer: UnsafeMutableRawPointer? { UnsafeMutableRawPointer(bitPattern: UInt(rawValue)) }
}
