import CRdKafka
import Synchronization

/// The delivery receiver of a ``TransactionalProducer``: remembers the first
/// record of each transaction that was not delivered, so that a failed commit
/// can say which record made librdkafka abort it.
///
/// Records carry their transaction's sequence number as token; reports of an
/// earlier transaction (purged by its abort) are ignored.
final class TransactionDeliveryRecorder: DeliveryReceiver {
    private struct State {
        var transaction: UInt64 = 0
        var firstFailure: KafkaError?
        var engineFailure: KafkaError?
    }

    private let state = Mutex(State())

    /// Starts recording for transaction `sequence` (the token its records carry).
    func begin(_ sequence: UInt64) {
        state.withLock { s in
            s.transaction = sequence & ProducerOpaque.tokenMask
            s.firstFailure = nil
        }
    }

    /// The first delivery failure of the current transaction, or the engine's fatal error.
    var failure: KafkaError? { state.withLock { $0.engineFailure ?? $0.firstFailure } }

    func deliver(_ reports: UnsafeBufferPointer<DeliveryReport>) {
        guard reports.contains(where: { !$0.succeeded }) else { return }
        state.withLock { s in
            guard s.firstFailure == nil else { return }
            for report in reports where !report.succeeded && report.token == s.transaction {
                // Purged records are the abort's doing, not a cause.
                if report.error == RD_KAFKA_RESP_ERR__PURGE_QUEUE || report.error == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT {
                    continue
                }
                let code = Int32(report.error.rawValue)
                s.firstFailure = KafkaError(
                    .deliveryFailed,
                    // The code's text (for a produced record librdkafka's errstr is the record's payload).
                    "a record of the transaction (partition \(report.partition)) was not delivered: \(KafkaError.codeName(code) ?? "error \(code)"): "
                        + String(cString: rd_kafka_err2str(report.error)),
                    code: code)
                return
            }
        }
    }

    func fail(_ error: KafkaError) {
        state.withLock { s in
            if s.engineFailure == nil { s.engineFailure = error }
        }
    }
}
