import StreamKit

/// The flow of ``Producer/flexiFlow(_:)``: ``ProducerMessage`` in,
/// ``ProducerResult`` out, in input order.
///
/// Nothing runs until the output is iterated; each iteration is one
/// independent run (its own pump task and, without a shared producer, its own
/// producer).
public struct ProducerFlexiFlow<Key: Sendable, Value: Sendable, PassThrough: Sendable>: Flow {
    public typealias Input = ProducerMessage<Key, Value, PassThrough>
    public typealias Output = ProducerResult<Key, Value, PassThrough>

    let settings: ProducerSettings<Key, Value>
    let producer: KafkaProducer<Key, Value>?

    public func apply<Upstream: AsyncSequence & Sendable>(_ upstream: Upstream) -> AnyAsyncSequence<Output>
    where Upstream.Element == Input {
        AnyAsyncSequence(ProducerFlexiFlowSequence(upstream: upstream, settings: settings, producer: producer))
    }
}

/// The output sequence of a ``ProducerFlexiFlow``.
struct ProducerFlexiFlowSequence<Upstream: AsyncSequence & Sendable, Key: Sendable, Value: Sendable, PassThrough: Sendable>: AsyncSequence, Sendable
where Upstream.Element == ProducerMessage<Key, Value, PassThrough> {
    typealias Element = ProducerResult<Key, Value, PassThrough>

    let upstream: Upstream
    let settings: ProducerSettings<Key, Value>
    let producer: KafkaProducer<Key, Value>?

    func makeAsyncIterator() -> Iterator {
        Iterator(driver: ProducerFlowDriver(upstream: upstream, settings: settings, sharedProducer: producer))
    }

    struct Iterator: AsyncIteratorProtocol {
        let driver: ProducerFlowDriver<Upstream, Key, Value, PassThrough>

        mutating func next() async throws -> Element? {
            try await driver.next()
        }
    }
}
