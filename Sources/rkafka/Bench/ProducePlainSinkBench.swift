import ReactiveKafka
import StreamKit

/// `produce-plainsink`, connector side: the records of `produce-flexiflow` (`messages` values of
/// `size` bytes, round-robin over the partitions) written with `Producer.plainSink`, which
/// completes once every record is acknowledged. Same producer properties, parallelism and
/// warm-up record as `produce-flexiflow`, so the two lines compare the sink with the flow.
/// Afterwards the output's end offsets must add up to the records written (warm-up included).
struct ProducePlainSinkBench: ConnectorBenchmark {
    func run(_ env: BenchEnvironment) async throws -> BenchMeasurement {
        let p = env.parameters
        let settings = ProducerSettings<KafkaBytes, KafkaBytes>(properties: env.producerSettingsProperties)
            .withParallelism(ProduceFlexiFlowBench.parallelism)
        let producer = try KafkaProducer(settings)
        let topic = env.connectorOutputTopic
        let payload = KafkaBytes([UInt8](repeating: UInt8(ascii: "x"), count: p.size))
        let measurement: BenchMeasurement
        do {
            _ = try await producer.send(ProducerRecord(topic: topic, partition: 0, value: payload))
            let source = Source(
                RoundRobinRecords(topic: topic, value: payload, count: p.messages, partitions: Int32(p.partitions)))
            var meter = PhaseMeter()
            meter.begin()
            try await source.run(into: Producer.plainSink(settings, producer: producer))
            measurement = meter.finish(
                messages: p.messages,
                notes: ["producer parallelism \(ProduceFlexiFlowBench.parallelism); 1 warm-up record before the clock"])
        } catch {
            await producer.close()
            throw error
        }
        await producer.close()
        var result = measurement
        let verified = try await onDedicatedThread("rkafka-bench-verify") {
            try verifyOutputCount(env, topic: topic, expected: p.messages + 1, reader: "\(env.connectorGroup)-verify")
        }
        result.notes.append(verified + ", warm-up included")
        return result
    }
}
