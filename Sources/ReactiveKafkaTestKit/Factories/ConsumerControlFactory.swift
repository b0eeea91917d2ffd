import ReactiveKafka
import StreamKit

/// Sources that emit given elements with a working `ConsumerControl`, to unit-test stream
/// logic written for Kafka sources without a cluster: Alpakka's `ConsumerControlFactory`.
///
/// ```swift
/// let committer = RecordingCommitter()
/// let messages = try (0..<3).map { i in
///     try ConsumerResultFactory.committableMessage(
///         ConsumerResultFactory.record(topic: "orders", offset: Int64(i), key: "k", value: "v\(i)"),
///         committer: committer)
/// }
/// let control = ConsumerControlFactory.source(messages)
///     .map(\.committableOffset)
///     .to(Committer.sink(CommitterSettings()))
///     .start()
/// try await control.streamCompletion.value
/// committer.committedOffsets // [orders-0: 3]
/// ```
public enum ConsumerControlFactory {
    /// A source emitting `elements` in order, materialising a control that stands in for a
    /// consumer: `ConsumerControl.stop()` completes the source (its "consumer" stays open,
    /// so offsets in flight can be committed) until `ConsumerControl.shutdown()`, which
    /// closes it; `ConsumerControl.drainAndShutdown(_:)` and `RunnableGraph.start()`'s
    /// `DrainingControl` work as with a Kafka source. With `completion`
    /// ``TestSourceCompletion/afterLastElement`` it completes after the last element, with
    /// ``TestSourceCompletion/whenStopped`` it waits for a stop like a Kafka source.
    ///
    /// The control's health is `ConsumerHealth.starting` until the first pull,
    /// `ConsumerHealth.consuming` while the stream runs and `ConsumerHealth.stopped`
    /// once closed; it has no consumer for `ConsumerControl.withConsumer(_:)` (which
    /// throws `KafkaError.Kind.illegalState`), reports no rebalances and zero metrics.
    /// Like a Kafka source, it can be run once.
    public static func source<Element: Sendable>(
        _ elements: [Element], completion: TestSourceCompletion = .afterLastElement
    ) -> Source<TestConsumerSequence<Element>, ConsumerControl> {
        let standIn = TestSourceStandIn(elements: elements, completion: completion)
        return Source(TestConsumerSequence(standIn), materialized: ConsumerControl(standIn: standIn))
    }
}

/// The elements of a ``ConsumerControlFactory/source(_:completion:)``, as an `AsyncSequence`.
///
/// Cancellation: `next()` throws `CancellationError` when its task is cancelled while it
/// waits for a stop. A second iteration fails with `KafkaError.Kind.illegalState`.
public struct TestConsumerSequence<Element: Sendable>: AsyncSequence, Sendable {
    private let source: TestSourceStandIn<Element>

    init(_ source: TestSourceStandIn<Element>) { self.source = source }

    /// Makes the iterator that produces this sequence's elements.
    public func makeAsyncIterator() -> Iterator { Iterator(source: source) }

    /// Pulls the source's elements; its first pull starts the source.
    public struct Iterator: AsyncIteratorProtocol {
        private let source: TestSourceStandIn<Element>
        /// Held while the stream runs: dropping the iterator ends the stream.
        private var lease: TestSourceLease<Element>?
        private var started = false
        private var finished = false

        init(source: TestSourceStandIn<Element>) { self.source = source }

        /// The next element, or `nil` once the sequence has ended.
        public mutating func next() async throws -> Element? {
            if finished { return nil }
            do {
                if !started {
                    started = true
                    guard try source.claim() else { return end() }
                    lease = TestSourceLease(source)
                }
                guard let element = try await source.next() else { return end() }
                return element
            } catch {
                _ = end()
                throw error
            }
        }

        private mutating func end() -> Element? {
            finished = true
            lease = nil
            return nil
        }
    }
}
