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

    @usableFromInline let settings: ProducerSettings<Key, Value>
    @usableFromInline let producer: KafkaProducer<Key, Value>?
    @usableFromInline let hooks: ProducerFlowHooks<Key, Value, PassThrough>

    @inlinable
    init(settings: ProducerSettings<Key, Value>, producer: KafkaProducer<Key, Value>?) {
        self.settings = settings
        self.producer = producer
        self.hooks = ProducerFlowHooks()
    }

    // Inlinable, so the upstream is erased where its type is known: the erased iterator the
    // pump calls per message is then compiled for that upstream (see `AnyAsyncSequence`).
    @inlinable
    public func apply<Upstream: AsyncSequence & Sendable>(_ upstream: Upstream) -> AnyAsyncSequence<Output>
    where Upstream.Element == Input {
        AnyAsyncSequence(
            ProducerFlexiFlowSequence(
                upstream: AnyAsyncSequence(upstream), settings: settings, producer: producer, hooks: hooks))
    }
}

/// Entry points into the run, created where the flow is created so that the
/// code behind them is specialised for the caller's types (even where the flow is
/// applied in generic code that is not).
@usableFromInline
struct ProducerFlowHooks<Key: Sendable, Value: Sendable, PassThrough: Sendable>: Sendable {
    /// A result already in the driver's buffer. Synchronous: most results are taken this
    /// way, and a synchronous call costs no async frame (task allocation) per element.
    @usableFromInline let take:
        @Sendable (ProducerFlowDriver<Key, Value, PassThrough>) -> ProducerResult<Key, Value, PassThrough>?
    // `nonisolated(nonsending)`: runs on the caller's executor, so waiting for results costs no
    // executor switch.
    @usableFromInline let next:
        nonisolated(nonsending) @Sendable (ProducerFlowDriver<Key, Value, PassThrough>) async throws -> ProducerResult<
            Key, Value, PassThrough
        >?

    @inlinable
    init() {
        take = { driver in driver.buffer.take() }
        next = { driver in try await driver.next() }
    }
}

/// The output sequence of a ``ProducerFlexiFlow``.
@usableFromInline
struct ProducerFlexiFlowSequence<Key: Sendable, Value: Sendable, PassThrough: Sendable>: AsyncSequence, Sendable {
    @usableFromInline typealias Element = ProducerResult<Key, Value, PassThrough>

    @usableFromInline let upstream: AnyAsyncSequence<ProducerMessage<Key, Value, PassThrough>>
    @usableFromInline let settings: ProducerSettings<Key, Value>
    @usableFromInline let producer: KafkaProducer<Key, Value>?
    @usableFromInline let hooks: ProducerFlowHooks<Key, Value, PassThrough>

    @inlinable
    init(
        upstream: AnyAsyncSequence<ProducerMessage<Key, Value, PassThrough>>, settings: ProducerSettings<Key, Value>,
        producer: KafkaProducer<Key, Value>?, hooks: ProducerFlowHooks<Key, Value, PassThrough>
    ) {
        self.upstream = upstream
        self.settings = settings
        self.producer = producer
        self.hooks = hooks
    }

    @inlinable func makeAsyncIterator() -> Iterator {
        Iterator(
            driver: ProducerFlowDriver<Key, Value, PassThrough>(
                upstream: upstream, settings: settings, sharedProducer: producer), hooks: hooks)
    }

    // Inlinable: where the erased output is made for known types (see `AnyAsyncSequence`),
    // the per-element call lands here without a frame of its own.
    @usableFromInline struct Iterator: AsyncIteratorProtocol {
        @usableFromInline let driver: ProducerFlowDriver<Key, Value, PassThrough>
        @usableFromInline let hooks: ProducerFlowHooks<Key, Value, PassThrough>

        @inlinable
        init(driver: ProducerFlowDriver<Key, Value, PassThrough>, hooks: ProducerFlowHooks<Key, Value, PassThrough>) {
            self.driver = driver
            self.hooks = hooks
        }

        @inlinable mutating func next() async throws -> Element? {
            if let result = hooks.take(driver) { return result }
            return try await hooks.next(driver)
        }

        // Implemented (not the default, which calls `next()` after an executor switch):
        // the erased iterator of the flow's output calls this one per element.
        @inlinable mutating func next(isolation actor: isolated (any Actor)?) async throws -> Element? {
            if let result = hooks.take(driver) { return result }
            return try await hooks.next(driver)
        }
    }
}
