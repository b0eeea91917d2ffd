import DequeModule

/// The pure state of a fan-in stage (`merge` of N, ``DynamicMerge``): many
/// producer tasks push into one bounded queue, one consumer takes from it.
/// A producer that finds the queue full waits with its element (so memory is
/// bounded by `bufferSize` plus one element per producer); waiting producers
/// are resumed first-come first-served as the consumer makes room.
@usableFromInline struct MergeStateMachine<Element: Sendable> {
    @usableFromInline typealias ConsumerContinuation = UnsafeContinuation<Result<Element?, any Error>, Never>
    @usableFromInline typealias ProducerContinuation = UnsafeContinuation<Bool, Never>

    @usableFromInline let bufferSize: Int
    @usableFromInline var queue: Deque<Element> = []
    @usableFromInline var waitingProducers: Deque<(element: Element, continuation: ProducerContinuation)> = []
    @usableFromInline var consumer: ConsumerContinuation? = nil
    @usableFromInline var activeProducers = 0
    /// No more upstreams will be added.
    @usableFromInline var closed = false
    @usableFromInline var failure: (any Error)? = nil
    @usableFromInline var endDelivered = false
    @usableFromInline var cancelled = false

    @inlinable init(bufferSize: Int) {
        self.bufferSize = Swift.max(1, bufferSize)
    }

    @inlinable var isFinished: Bool { closed && activeProducers == 0 }

    // MARK: consumer

    @usableFromInline enum ConsumerAction {
        case deliver(Result<Element?, any Error>, resumeProducer: ProducerContinuation?)
        case suspend
    }

    @inlinable mutating func next() -> ConsumerAction {
        if let element = queue.popFirst() {
            var resume: ProducerContinuation? = nil
            if let waiting = waitingProducers.popFirst() {
                queue.append(waiting.element)
                resume = waiting.continuation
            }
            return .deliver(.success(element), resumeProducer: resume)
        }
        if let waiting = waitingProducers.popFirst() {
            return .deliver(.success(waiting.element), resumeProducer: waiting.continuation)
        }
        if endDelivered || cancelled { return .deliver(.success(nil), resumeProducer: nil) }
        if let failure {
            endDelivered = true
            return .deliver(.failure(failure), resumeProducer: nil)
        }
        if isFinished {
            endDelivered = true
            return .deliver(.success(nil), resumeProducer: nil)
        }
        return .suspend
    }

    @inlinable mutating func suspend(_ continuation: ConsumerContinuation) -> ConsumerAction {
        let action = next()
        if case .suspend = action { consumer = continuation }
        return action
    }

    // MARK: producers

    /// A producer is about to start. Returns `false` if the stage is over (do not start).
    @inlinable mutating func producerAdded() -> Bool {
        if cancelled || failure != nil || endDelivered { return false }
        activeProducers += 1
        return true
    }

    @usableFromInline enum PushAction {
        case delivered(ConsumerContinuation?)
        case wait
        case stop
    }

    /// A producer has `element`. `.wait` means: suspend with ``park(_:_:)``.
    @inlinable mutating func push(_ element: Element) -> (PushAction, Element?) {
        if cancelled || failure != nil { return (.stop, nil) }
        if let consumer {
            self.consumer = nil
            return (.delivered(consumer), element)
        }
        if queue.count < bufferSize {
            queue.append(element)
            return (.delivered(nil), nil)
        }
        return (.wait, element)
    }

    @inlinable mutating func park(_ element: Element, _ continuation: ProducerContinuation) -> (
        resumeNow: Bool?, consumer: ConsumerContinuation?, element: Element?
    ) {
        if cancelled || failure != nil { return (false, nil, nil) }
        if let consumer {
            self.consumer = nil
            return (true, consumer, element)
        }
        if queue.count < bufferSize {
            queue.append(element)
            return (true, nil, nil)
        }
        waitingProducers.append((element, continuation))
        return (nil, nil, nil)
    }

    /// A producer's upstream ended. Returns the consumer to resume with the end, if that was the last.
    @inlinable mutating func producerFinished(_ error: (any Error)?) -> (
        ConsumerContinuation, Result<Element?, any Error>
    )? {
        activeProducers -= 1
        if let error, failure == nil, !cancelled { failure = error }
        guard let consumer else { return nil }
        if let failure, queue.isEmpty, waitingProducers.isEmpty {
            self.consumer = nil
            endDelivered = true
            return (consumer, .failure(failure))
        }
        if isFinished {
            self.consumer = nil
            endDelivered = true
            return (consumer, .success(nil))
        }
        return nil
    }

    /// No more upstreams will be added.
    @inlinable mutating func close() -> ConsumerContinuation? {
        closed = true
        if isFinished, let consumer {
            self.consumer = nil
            endDelivered = true
            return consumer
        }
        return nil
    }

    /// The consumer stopped: everything is cancelled.
    @inlinable mutating func cancel() -> (ConsumerContinuation?, [ProducerContinuation]) {
        cancelled = true
        queue.removeAll()
        let producers = waitingProducers.map(\.continuation)
        waitingProducers.removeAll()
        let consumer = self.consumer
        self.consumer = nil
        return (consumer, producers)
    }
}
