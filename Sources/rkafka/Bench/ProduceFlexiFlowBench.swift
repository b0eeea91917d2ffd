import ReactiveKafka
import StreamKit

/// `produce-flexiflow`, connector side: `messages` values of `size` bytes, round-robin over the
/// partitions, through `Producer.flexiFlow` with the baseline's producer properties, counting
/// the results (each emitted once its record is acknowledged).
///
/// The flow produces through a shared ``KafkaProducer`` that sends one warm-up record before
/// the clock starts: the baseline likewise learns the topic's metadata first, so neither run
/// measures librdkafka's 1 s wait for the metadata of a topic it has not seen.
struct ProduceFlexiFlowBench: ConnectorBenchmark {
    /// Messages in flight in the flow, as in the pipeline scenario. The raw loop bounds its
    /// in-flight messages only by librdkafka's queue (1,000,000). With the default 10,000
    /// spread over 64 partitions no partition fills a batch, so each waits out `linger.ms`
    /// (5 ms) and the flow is latency-bound at ~1M msgs/s (measured: 0.95-1.0 s against
    /// 0.62-0.66 s for 1M messages).
    static let parallelism = 100_000

    func run(_ env: BenchEnvironment) async throws -> BenchMeasurement {
        let p = env.parameters
        let settings = ProducerSettings<KafkaBytes, KafkaBytes>(properties: env.producerSettingsProperties)
            .withParallelism(Self.parallelism)
        let producer = try KafkaProducer(settings)
        let topic = env.connectorOutputTopic
        let payload = KafkaBytes([UInt8](repeating: UInt8(ascii: "x"), count: p.size))
        _ = try await producer.send(ProducerRecord(topic: topic, partition: 0, value: payload))

        let source = Source(
            RoundRobinMessages(topic: topic, value: payload, count: p.messages, partitions: Int32(p.partitions)))
        var meter = PhaseMeter()
        meter.begin()
        var results = 0
        for try await _ in source.via(Producer.flexiFlow(settings, producer: producer)) { results += 1 }
        let measurement = meter.finish(
            messages: results, notes: ["producer parallelism \(Self.parallelism); 1 warm-up record before the clock"])
        await producer.close()
        guard results == p.messages else {
            throw BenchError("produce-flexiflow: \(results) results for \(p.messages) messages")
        }
        return measurement
    }
}

/// `count` single-record messages for `topic`, partition `i % partitions`, all sharing one value
/// buffer: ``RoundRobinRecords``, each wrapped in `.single`; generated on demand without suspending.
struct RoundRobinMessages: AsyncSequence, Sendable {
    typealias Element = ProducerMessage<KafkaBytes, KafkaBytes, Void>
    let records: RoundRobinRecords

    init(topic: String, value: KafkaBytes, count: Int, partitions: Int32) {
        records = RoundRobinRecords(topic: topic, value: value, count: count, partitions: partitions)
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        var records: RoundRobinRecords.AsyncIterator

        mutating func next() async -> Element? {
            records.nextRecord().map { .single($0, passThrough: ()) }
        }

        // Implemented so that the flow's erased upstream iterator calls it without the
        // executor switch of the default implementation: the source costs next to nothing.
        mutating func next(isolation actor: isolated (any Actor)?) async -> Element? {
            records.nextRecord().map { .single($0, passThrough: ()) }
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(records: records.makeAsyncIterator()) }
}

/// `count` records for `topic`, partition `i % partitions`, all sharing one value buffer;
/// generated on demand without suspending.
struct RoundRobinRecords: AsyncSequence, Sendable {
    typealias Element = ProducerRecord<KafkaBytes, KafkaBytes>
    let topic: String
    let value: KafkaBytes
    let count: Int
    let partitions: Int32

    struct AsyncIterator: AsyncIteratorProtocol {
        let base: RoundRobinRecords
        var index = 0
        var partition: Int32 = 0

        mutating func next() async -> Element? {
            nextRecord()
        }

        // As `RoundRobinMessages`': no executor switch per element.
        mutating func next(isolation actor: isolated (any Actor)?) async -> Element? {
            nextRecord()
        }

        @inline(__always)
        mutating func nextRecord() -> Element? {
            guard index < base.count else { return nil }
            index += 1
            let record = Element(topic: base.topic, partition: partition, value: base.value)
            partition += 1
            if partition == base.partitions { partition = 0 }
            return record
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: self) }
}
