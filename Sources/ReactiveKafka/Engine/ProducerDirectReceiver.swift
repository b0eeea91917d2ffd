import Synchronization

/// Matches delivery reports to one-off ``KafkaProducer/send(_:)`` calls.
///
/// A send reserves a token before producing, so a report that arrives before
/// the sender starts waiting is kept until it does.
final class DirectDeliveryReceiver: DeliveryReceiver {
    private enum Entry {
        case pending
        case waiting(UnsafeContinuation<Result<DeliveryReport, KafkaError>, Never>)
        case done(Result<DeliveryReport, KafkaError>)
    }

    private struct State {
        var nextToken: UInt64 = 0
        var entries: [UInt64: Entry] = [:]
    }

    private let state = Mutex(State())

    /// A token for a record about to be produced.
    func reserve() -> UInt64 {
        state.withLock { s in
            s.nextToken = (s.nextToken + 1) & ProducerOpaque.tokenMask
            s.entries[s.nextToken] = .pending
            return s.nextToken
        }
    }

    /// Forgets `token` (its record was not produced).
    func release(_ token: UInt64) {
        _ = state.withLock { $0.entries.removeValue(forKey: token) }
    }

    /// Waits for the report of the record produced with `token`.
    func wait(_ token: UInt64) async -> Result<DeliveryReport, KafkaError> {
        await withUnsafeContinuation { continuation in
            let ready = state.withLock { s -> Result<DeliveryReport, KafkaError>? in
                if case .done(let result) = s.entries[token] {
                    s.entries[token] = nil
                    return result
                }
                s.entries[token] = .waiting(continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    func deliver(_ reports: UnsafeBufferPointer<DeliveryReport>) {
        var resumes: [(UnsafeContinuation<Result<DeliveryReport, KafkaError>, Never>, DeliveryReport)] = []
        state.withLock { s in
            for report in reports {
                switch s.entries[report.token] {
                case .waiting(let continuation):
                    s.entries[report.token] = nil
                    resumes.append((continuation, report))
                case .pending:
                    s.entries[report.token] = .done(.success(report))
                case .done, nil:
                    break
                }
            }
        }
        for (continuation, report) in resumes { continuation.resume(returning: .success(report)) }
    }

    func fail(_ error: KafkaError) {
        var resumes: [UnsafeContinuation<Result<DeliveryReport, KafkaError>, Never>] = []
        state.withLock { s in
            for (token, entry) in s.entries {
                switch entry {
                case .waiting(let continuation):
                    s.entries[token] = nil
                    resumes.append(continuation)
                case .pending:
                    s.entries[token] = .done(.failure(error))
                case .done:
                    break
                }
            }
        }
        for continuation in resumes { continuation.resume(returning: .failure(error)) }
    }
}
