import DequeModule

/// What a pump's consumer gets next.
@usableFromInline enum PumpEvent<Element> {
    case element(Element)
    /// The upstream ended (with an error, or `nil` for normal completion), or the pump was cancelled.
    case finished((any Error)?)
    /// A timer the consumer armed fired before an element arrived.
    case tick
}

/// How a pump treats an element that arrives when its buffer is full.
@usableFromInline enum PumpOverflow: Sendable {
    case backpressure, dropHead, dropTail, dropBuffer, dropNew, fail
}

/// The pure state of a pump: a reader task pulls an upstream into a bounded
/// buffer, one consumer takes from it. No I/O; the storage resumes the
/// continuations this returns, outside its lock.
@usableFromInline struct PumpStateMachine<Element> {
    @usableFromInline typealias ConsumerContinuation = UnsafeContinuation<PumpEvent<Element>, Never>
    @usableFromInline typealias ProducerContinuation = UnsafeContinuation<Bool, Never>

    @usableFromInline let capacity: Int
    @usableFromInline let overflow: PumpOverflow
    @usableFromInline var buffer: Deque<Element> = []
    @usableFromInline var terminal: (any Error)?? = nil
    @usableFromInline var consumer: ConsumerContinuation?
    @usableFromInline var producer: ProducerContinuation?
    @usableFromInline var cancelled = false
    @usableFromInline var tickPending = false
    @usableFromInline var generation: UInt64 = 0
    @usableFromInline var started = false
    /// Elements dropped by the overflow strategy.
    @usableFromInline var dropped = 0
    /// The largest number of elements the buffer held at once.
    @usableFromInline var highWaterMark = 0

    @inlinable init(capacity: Int, overflow: PumpOverflow) {
        self.capacity = max(1, capacity)
        self.overflow = overflow
    }

    @usableFromInline enum ConsumerAction {
        case event(PumpEvent<Element>, resumeProducer: ProducerContinuation?)
        case suspend
    }

    /// The consumer asks for its next event without suspending.
    @inlinable mutating func next() -> ConsumerAction {
        if let element = buffer.popFirst() {
            var resume: ProducerContinuation? = nil
            // Resume the reader once half the buffer is free, so it refills in batches.
            if producer != nil, buffer.count <= capacity / 2 {
                resume = producer
                producer = nil
            }
            return .event(.element(element), resumeProducer: resume)
        }
        if let terminal {
            self.terminal = .some(nil) // the error is delivered once
            return .event(.finished(terminal), resumeProducer: nil)
        }
        if cancelled { return .event(.finished(nil), resumeProducer: nil) }
        if tickPending {
            tickPending = false
            return .event(.tick, resumeProducer: nil)
        }
        return .suspend
    }

    /// The consumer suspends with `continuation`; if something arrived since ``next()``, it is returned instead.
    @inlinable mutating func suspend(_ continuation: ConsumerContinuation) -> ConsumerAction {
        let action = next()
        if case .suspend = action { consumer = continuation }
        return action
    }

    /// Starts a new wait: ticks armed for earlier waits are ignored from now on.
    @inlinable mutating func newWait() -> UInt64 {
        generation &+= 1
        tickPending = false
        return generation
    }

    @usableFromInline enum RoomAction { case proceed, suspend, stop }

    /// The reader asks whether it may pull the next upstream element.
    @inlinable mutating func readerWantsRoom() -> RoomAction {
        if cancelled || terminal != nil { return .stop }
        if overflow == .backpressure && buffer.count >= capacity { return .suspend }
        return .proceed
    }

    @inlinable mutating func readerSuspend(_ continuation: ProducerContinuation) -> RoomAction {
        let action = readerWantsRoom()
        if case .suspend = action { producer = continuation }
        return action
    }

    @usableFromInline enum ReceiveAction {
        case resumeConsumer(ConsumerContinuation, PumpEvent<Element>)
        case buffered
        /// The element was refused and the reader must stop (cancelled or `.fail` overflow).
        case stop(resumeConsumer: ConsumerContinuation?, event: PumpEvent<Element>)
    }

    /// The reader got `element` from upstream.
    @inlinable mutating func received(_ element: Element) -> ReceiveAction {
        if cancelled { return .stop(resumeConsumer: nil, event: .finished(nil)) }
        if let consumer {
            self.consumer = nil
            return .resumeConsumer(consumer, .element(element))
        }
        if buffer.count >= capacity {
            switch overflow {
            case .backpressure, .dropTail:
                // .backpressure never gets here (the reader waited for room); kept total for safety.
                if overflow == .dropTail {
                    buffer.removeLast()
                    dropped += 1
                }
                buffer.append(element)
            case .dropHead:
                buffer.removeFirst()
                dropped += 1
                buffer.append(element)
            case .dropBuffer:
                dropped += buffer.count
                buffer.removeAll(keepingCapacity: true)
                buffer.append(element)
            case .dropNew:
                dropped += 1
            case .fail:
                terminal = .some(StreamKitError.bufferOverflow(size: capacity))
                return .stop(resumeConsumer: nil, event: .finished(nil))
            }
        } else {
            buffer.append(element)
        }
        highWaterMark = max(highWaterMark, buffer.count)
        return .buffered
    }

    /// The upstream ended; returns the consumer to resume, if it is waiting.
    @inlinable mutating func upstreamFinished(_ error: (any Error)?) -> (ConsumerContinuation, PumpEvent<Element>)? {
        guard terminal == nil, !cancelled else { return nil }
        if let consumer {
            self.consumer = nil
            terminal = .some(nil)
            return (consumer, .finished(error))
        }
        terminal = .some(error)
        return nil
    }

    /// A timer armed for wait `generation` fired.
    @inlinable mutating func tick(_ generation: UInt64) -> ConsumerContinuation? {
        guard generation == self.generation, !cancelled else { return nil }
        if let consumer {
            self.consumer = nil
            return consumer
        }
        tickPending = true
        return nil
    }

    /// Ends the pump from outside with `error` (or normal completion): buffered
    /// elements are dropped and the consumer sees the end at once (a kill switch).
    @inlinable mutating func abort(_ error: (any Error)?) -> (ConsumerContinuation?, ProducerContinuation?) {
        let wasWaiting = consumer != nil
        terminal = .some(wasWaiting ? nil : error) // a waiting consumer gets it directly
        return cancel()
    }

    /// Ends the pump from outside (consumer gone, kill switch, timeout).
    @inlinable mutating func cancel() -> (ConsumerContinuation?, ProducerContinuation?) {
        cancelled = true
        buffer.removeAll()
        let result = (consumer, producer)
        consumer = nil
        producer = nil
        return result
    }
}

extension PumpEvent: Sendable where Element: Sendable {}
