/// The pure state of `batch`/`conflate`: a reader folds upstream elements
/// into one pending aggregate while the consumer is busy; the consumer takes
/// the whole aggregate when it asks. With a `max` the reader stops pulling
/// once the aggregate holds `max` elements (back-pressure).
@usableFromInline struct BatchStateMachine<Aggregate> {
    @usableFromInline typealias ConsumerContinuation = UnsafeContinuation<Result<Aggregate?, any Error>, Never>
    @usableFromInline typealias ReaderContinuation = UnsafeContinuation<Bool, Never>

    @usableFromInline let max: Int
    @usableFromInline var aggregate: Aggregate? = nil
    @usableFromInline var count = 0
    /// The reader took the aggregate out to extend it (outside the lock).
    @usableFromInline var extending = false
    @usableFromInline var terminal: (any Error)?? = nil
    @usableFromInline var endDelivered = false
    @usableFromInline var consumer: ConsumerContinuation? = nil
    @usableFromInline var reader: ReaderContinuation? = nil
    @usableFromInline var cancelled = false
    @usableFromInline var started = false

    @inlinable init(max: Int) { self.max = Swift.max(1, max) }

    @usableFromInline enum ConsumerAction {
        case deliver(Result<Aggregate?, any Error>, resumeReader: ReaderContinuation?)
        case suspend
    }

    @inlinable mutating func next() -> ConsumerAction {
        if !extending, let aggregate {
            self.aggregate = nil
            count = 0
            let reader = self.reader
            self.reader = nil
            return .deliver(.success(aggregate), resumeReader: reader)
        }
        if extending { return .suspend }
        if let terminal {
            if endDelivered || cancelled { return .deliver(.success(nil), resumeReader: nil) }
            endDelivered = true
            return .deliver(terminal.map { .failure($0) } ?? .success(nil), resumeReader: nil)
        }
        if cancelled { return .deliver(.success(nil), resumeReader: nil) }
        return .suspend
    }

    @inlinable mutating func suspend(_ continuation: ConsumerContinuation) -> ConsumerAction {
        let action = next()
        if case .suspend = action { consumer = continuation }
        return action
    }

    @usableFromInline enum ReaderAction { case pull, suspend, stop }

    @inlinable mutating func readerWantsToPull() -> ReaderAction {
        if cancelled || terminal != nil { return .stop }
        return count >= max ? .suspend : .pull
    }

    @inlinable mutating func readerSuspend(_ continuation: ReaderContinuation) -> ReaderAction {
        let action = readerWantsToPull()
        if case .suspend = action { reader = continuation }
        return action
    }

    /// The reader got an element: it extends the current aggregate (or seeds a new one) outside the lock.
    @inlinable mutating func beginExtend() -> Aggregate? {
        extending = true
        defer { aggregate = nil }
        return aggregate
    }

    /// The reader finished extending; returns the consumer to hand the aggregate to, if it waits.
    @inlinable mutating func endExtend(_ new: Aggregate) -> (ConsumerContinuation, Aggregate)? {
        extending = false
        if cancelled { return nil }
        if let consumer {
            self.consumer = nil
            count = 0
            return (consumer, new)
        }
        aggregate = new
        count += 1
        return nil
    }

    @inlinable mutating func finish(_ error: (any Error)?) -> (ConsumerContinuation, Result<Aggregate?, any Error>)? {
        guard terminal == nil else { return nil }
        terminal = .some(error)
        if let consumer, aggregate == nil, !extending {
            self.consumer = nil
            endDelivered = true
            return (consumer, error.map { .failure($0) } ?? .success(nil))
        }
        return nil
    }

    @inlinable mutating func cancel() -> (ConsumerContinuation?, ReaderContinuation?) {
        cancelled = true
        aggregate = nil
        defer {
            consumer = nil
            reader = nil
        }
        return (consumer, reader)
    }
}
