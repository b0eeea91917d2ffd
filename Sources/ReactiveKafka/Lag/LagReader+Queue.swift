import CRdKafka

/// Waiting for admin results on a reading's queue, within the reading's deadline.
extension LagReader {
    /// Admin options whose request timeout is what is left of `deadline`.
    static func adminOptions(
        _ rk: OpaquePointer, _ op: rd_kafka_admin_op_t, _ deadline: BlockingCallDeadline, _ what: String
    ) throws(KafkaError) -> OpaquePointer {
        let timeoutMs = try deadline.remainingMilliseconds(what)
        guard let options = rd_kafka_AdminOptions_new(rk, op) else {
            throw KafkaError(.fatal, "\(what): librdkafka could not allocate admin options")
        }
        var errstr = [CChar](repeating: 0, count: 256)
        if rd_kafka_AdminOptions_set_request_timeout(options, timeoutMs, &errstr, errstr.count)
            != RD_KAFKA_RESP_ERR_NO_ERROR
        {
            rd_kafka_AdminOptions_destroy(options)
            throw KafkaError(
                .fatal,
                "\(what): \(String(decoding: errstr.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
        }
        return options
    }

    /// Waits for `count` results of event type `type` on `queue` and returns what `body` made
    /// of each (the event is destroyed after). Other events (a late answer to an earlier,
    /// timed-out request) are dropped. Throws once `deadline` passes.
    static func awaitEvents<T>(
        _ count: Int, of type: Int32, on queue: OpaquePointer?, _ deadline: BlockingCallDeadline, _ what: String,
        _ body: (OpaquePointer) throws(KafkaError) -> T
    ) throws(KafkaError) -> [T] {
        var results: [T] = []
        results.reserveCapacity(count)
        while results.count < count {
            guard let event = rd_kafka_queue_poll(queue, try deadline.remainingMilliseconds(what)) else { continue }
            defer { rd_kafka_event_destroy(event) }
            guard rd_kafka_event_type(event) == type else { continue }
            results.append(try body(event))
        }
        return results
    }

    /// Throws the request-level error of an admin result, if any.
    static func checkEvent(_ event: OpaquePointer, _ what: String) throws(KafkaError) {
        let err = rd_kafka_event_error(event)
        guard err != RD_KAFKA_RESP_ERR_NO_ERROR else { return }
        let reason =
            rd_kafka_event_error_string(event).map { String(cString: $0) } ?? String(cString: rd_kafka_err2str(err))
        throw KafkaError(kind(of: err), "\(what): \(reason)", code: Int32(err.rawValue))
    }

    /// `.brokerUnreachable` for the errors of a cluster that does not answer, `.kafka` for the others.
    static func kind(of err: rd_kafka_resp_err_t) -> KafkaError.Kind {
        let unreachable = [
            RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN,
            RD_KAFKA_RESP_ERR__RESOLVE,
        ]
        return unreachable.contains(err) ? .brokerUnreachable : .kafka
    }
}
