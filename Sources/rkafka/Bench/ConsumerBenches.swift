import ReactiveKafka
import StreamKit

/// `plain-consume`, connector side: `Consumer.plainSource` over the seeded input with raw
/// byte keys and values, counting records and value bytes; timed from the first record to
/// the last, like the raw consume loop. The consumer is shut down after the clock stops
/// (the baseline likewise closes its consumer outside the measured time).
struct PlainConsumeBench: ConnectorBenchmark {
    func run(_ env: BenchEnvironment) async throws -> BenchMeasurement {
        let expected = env.parameters.messages
        let source = Consumer.plainSource(env.connectorConsumerSettings, subscription: .topics(env.inputTopic))
        var meter = PhaseMeter()
        var got = 0
        var bytes = 0
        do {
            for try await record in source {
                meter.begin()
                got += 1
                bytes += record.value.count
                if got == expected { break }
            }
        } catch {
            await source.materialized.shutdown()
            throw error
        }
        let measurement = meter.finish(messages: got, notes: ["\(bytes) value bytes"])
        await source.materialized.shutdown()
        guard got == expected else {
            throw BenchError("plain-consume: the source completed after \(got) of \(expected) records")
        }
        return measurement
    }
}

/// `committable-consume-commit`, connector side:
/// `Consumer.committableSource(…).map(\.committableOffset).to(Committer.sink(CommitterSettings()))`
/// over the first `messages` records (the default `maxBatch` of 1000 matches the baseline's
/// commit interval). Timed from the first record until the sink has committed the last
/// offset with the broker's acknowledgement (`waitForAck`, the default); the committed
/// offsets are then read back and must add up to the number of messages.
struct CommittableConsumeCommitBench: ConnectorBenchmark {
    func run(_ env: BenchEnvironment) async throws -> BenchMeasurement {
        let expected = env.parameters.messages
        let clock = FirstElementClock()
        let control = Consumer.committableSource(env.connectorConsumerSettings, subscription: .topics(env.inputTopic))
            .take(expected)
            .map { message in
                clock.mark()
                return message.committableOffset
            }
            .to(Committer.sink(CommitterSettings()))
            .start()
        let measurement: BenchMeasurement
        do {
            try await control.streamCompletion.value
            measurement = clock.finish(messages: expected)
        } catch {
            await control.shutdown()
            throw error
        }
        await control.shutdown()
        var result = measurement
        result.notes.append(try await verifyConnectorCommits(env))
        return result
    }
}

/// `at-least-once-pipeline`, connector side, Alpakka's consume → produce → commit:
/// `committableSource.map(ProducerMessage.single).via(Producer.flexiFlow).map { $0.passThrough }
/// .to(Committer.sink)` over the first `messages` records, each produced (same partition, key and
/// value, as the baseline does) to the connector's output topic. Timed from the first
/// record until every result reached the committer and the last commit is acknowledged; the
/// committed offsets are then read back. The producer has the baseline's librdkafka
/// properties and ``parallelism`` messages in flight, and sends one warm-up record before the
/// clock starts (the baseline learns the output topic's metadata first, too).
struct AtLeastOncePipelineBench: ConnectorBenchmark {
    /// Messages in flight in the producer flow. The raw baseline bounds its in-flight
    /// messages only by librdkafka's queue (1,000,000): with the default 10,000 the flow
    /// waits for acknowledgements the mock cluster returns a linger-batch at a time.
    static let parallelism = 100_000

    func run(_ env: BenchEnvironment) async throws -> BenchMeasurement {
        let expected = env.parameters.messages
        let output = env.connectorOutputTopic
        let producerSettings = ProducerSettings<KafkaBytes, KafkaBytes>(properties: env.producerSettingsProperties)
            .withParallelism(Self.parallelism)
        let producer = try KafkaProducer(producerSettings)
        _ = try await producer.send(ProducerRecord(topic: output, partition: 0, value: KafkaBytes([UInt8(ascii: "w")])))

        let clock = FirstElementClock()
        let control = Consumer.committableSource(env.connectorConsumerSettings, subscription: .topics(env.inputTopic))
            .take(expected)
            .map { message in
                clock.mark()
                return ProducerMessage.single(
                    ProducerRecord(
                        topic: output, partition: message.record.partition, key: message.record.key,
                        value: message.record.value),
                    passThrough: message.committableOffset)
            }
            .via(Producer.flexiFlow(producerSettings, producer: producer))
            // A closure, not `.map(\.passThrough)`: Swift instantiates a generic key path on
            // every call of the function it becomes, which cost more than the connector's
            // whole produce step (0.19 µs per element; see the README's performance notes).
            .map { $0.passThrough }
            .to(Committer.sink(CommitterSettings()))
            .start()
        let measurement: BenchMeasurement
        do {
            try await control.streamCompletion.value
            measurement = clock.finish(
                messages: expected,
                notes: ["producer parallelism \(Self.parallelism); 1 warm-up record before the clock"])
        } catch {
            await control.shutdown()
            await producer.close()
            throw error
        }
        await control.shutdown()
        await producer.close()
        var result = measurement
        result.notes.append(try await verifyConnectorCommits(env))
        return result
    }
}

extension BenchEnvironment {
    /// The connector's consumer settings: raw bytes (no copy) and the baseline's librdkafka properties.
    var connectorConsumerSettings: ConsumerSettings<KafkaBytes, KafkaBytes> {
        ConsumerSettings(properties: consumerSettingsProperties(group: connectorGroup))
    }
}

/// A ``PhaseMeter`` started by the first element of a running stream and read once the
/// stream has completed. `mark()` is called only from the stream's own (sequential) stage and
/// `finish` only after awaiting the stream's completion, which orders the two.
final class FirstElementClock: @unchecked Sendable {
    private var meter = PhaseMeter()
    private var started = false

    @inline(__always)
    func mark() {
        if !started {
            started = true
            meter.begin()
        }
    }

    func finish(messages: Int, notes: [String] = []) -> BenchMeasurement {
        meter.finish(messages: messages, notes: notes)
    }
}
