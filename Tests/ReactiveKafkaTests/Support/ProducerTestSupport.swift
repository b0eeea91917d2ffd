import ReactiveKafka
import ReactiveKafkaTestKit
import Synchronization

/// An asynchronous sequence over an array that calls `onPull` each time an
/// element is pulled, so tests can see how far a stage reads ahead.
struct ObservedSequence<Element: Sendable>: AsyncSequence, Sendable {
    let elements: [Element]
    let onPull: @Sendable (Int) -> Void

    init(_ elements: [Element], onPull: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.elements = elements
        self.onPull = onPull
    }

    func makeAsyncIterator() -> Iterator { Iterator(elements: elements, onPull: onPull) }

    struct Iterator: AsyncIteratorProtocol {
        let elements: [Element]
        let onPull: @Sendable (Int) -> Void
        var index = 0

        mutating func next() async throws -> Element? {
            guard index < elements.count else { return nil }
            defer { index += 1 }
            onPull(index)
            return elements[index]
        }
    }
}

/// Tracks the largest difference between elements pulled from upstream and
/// results taken downstream: what a stage holds in flight.
final class InFlightTracker: Sendable {
    private let state = Mutex((current: 0, max: 0))

    func pulled() {
        state.withLock { s in
            s.current += 1
            s.max = Swift.max(s.max, s.current)
        }
    }

    func received(_ count: Int = 1) { state.withLock { $0.current -= count } }

    var max: Int { state.withLock { $0.max } }
}

/// Producer settings for `bootstrapServers` with string keys and values and a short linger.
func stringProducerSettings(_ bootstrapServers: String) -> ProducerSettings<String, String> {
    ProducerSettings(keySerializer: .string, valueSerializer: .string)
        .withBootstrapServers(bootstrapServers)
        .withProperty("linger.ms", "2")
        .withCloseTimeout(.seconds(5))
}

extension EmbeddedKafka {
    /// Producer settings for this cluster with string keys and values and a short linger.
    func producerSettings() -> ProducerSettings<String, String> { stringProducerSettings(bootstrapServers) }
}

extension TestCluster {
    /// Producer settings for this cluster with string keys and values and a short linger.
    func producerSettings() -> ProducerSettings<String, String> { stringProducerSettings(bootstrapServers) }

    /// Consumer settings for this cluster: string keys and values, `group`, from the earliest
    /// offset, the cluster's fast group timeouts.
    func consumerSettings(group: String) -> ConsumerSettings<String, String> {
        ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
            .withBootstrapServers(bootstrapServers)
            .withGroupId(group)
            .withProperty("auto.offset.reset", "earliest")
            .withProperties(groupProperties)
    }
}
