import Dispatch
import ReactiveKafka
import StreamKit
import Synchronization

/// `transactional-pipeline`: the exactly-once consume → map → produce pipeline
/// (`Transactional.source → map → Transactional.sink`, a transaction committed every
/// 100 ms), measured against the at-least-once connector pipeline of the same run
/// (`at-least-once-pipeline`'s connector side, on the baseline's group and output topic):
/// the price of exactly-once, not of the connector.
enum TransactionalBench {
    static let interval: Duration = .milliseconds(100)

    static let scenario = KafkaBenchScenario(
        name: "transactional-pipeline",
        baselineDescription:
            "the at-least-once connector pipeline (committableSource → map → flexiFlow → Committer.sink)",
        consumesSeededInput: true,
        baseline: { env in try atLeastOncePipeline(env) },
        connector: TransactionalPipelineBench()
    )

    /// The at-least-once connector pipeline, on the baseline's group and output topic. It is
    /// asynchronous and the baseline runs on a dedicated thread, which waits for it.
    static func atLeastOncePipeline(_ env: BenchEnvironment) throws -> BenchMeasurement {
        let baselineSide = BenchEnvironment(
            parameters: env.parameters, connection: env.connection, inputTopic: env.inputTopic,
            baselineOutputTopic: env.baselineOutputTopic, connectorOutputTopic: env.baselineOutputTopic,
            baselineGroup: env.baselineGroup, connectorGroup: env.baselineGroup)
        let outcome = Mutex<Result<BenchMeasurement, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let result: Result<BenchMeasurement, any Error>
            do { result = .success(try await AtLeastOncePipelineBench().run(baselineSide)) } catch {
                result = .failure(error)
            }
            outcome.withLock { $0 = result }
            done.signal()
        }
        done.wait()
        return try outcome.withLock { $0! }.get()
    }
}

/// `transactional-pipeline`, connector side: `Transactional.source.map(ProducerMessage.single)
/// .to(Transactional.sink)` over the first `messages` records, each produced (same partition,
/// key and value) to the connector's output topic. Timed from the first record until the sink
/// has committed the last transaction. The producer has the baseline's librdkafka properties and
/// the at-least-once pipeline's parallelism. The mock cluster does not store transactional
/// offsets, so the check afterwards is on the output: the partitions' end offsets must add up to
/// the number of messages (no record written twice, none missing; the mock cluster writes no
/// transaction markers, and an aborted transaction would leave records).
struct TransactionalPipelineBench: ConnectorBenchmark {
    /// The at-least-once pipeline's: bigger produce batches per partition, which the
    /// idempotent producer needs (at most 5 requests in flight per broker, one partition each).
    static let parallelism = AtLeastOncePipelineBench.parallelism

    func run(_ env: BenchEnvironment) async throws -> BenchMeasurement {
        let expected = env.parameters.messages
        let output = env.connectorOutputTopic
        let producerSettings = ProducerSettings<KafkaBytes, KafkaBytes>(properties: env.producerSettingsProperties)
            .withParallelism(TransactionalPipelineBench.parallelism)
        let clock = FirstElementClock()
        let control = Transactional.source(env.connectorConsumerSettings, subscription: .topics(env.inputTopic))
            .take(expected)
            .map { message in
                clock.mark()
                return ProducerMessage.single(
                    ProducerRecord(
                        topic: output, partition: message.record.partition, key: message.record.key,
                        value: message.record.value),
                    passThrough: message.partitionOffset)
            }
            .to(
                Transactional.sink(
                    producerSettings, transactionalId: "\(env.connectorGroup)-txn",
                    eosCommitInterval: TransactionalBench.interval)
            )
            .start()
        let measurement: BenchMeasurement
        do {
            try await control.streamCompletion.value
            measurement = clock.finish(
                messages: expected,
                notes: [
                    "transactions every \(TransactionalBench.interval)",
                    "producer parallelism \(TransactionalPipelineBench.parallelism)",
                ])
        } catch {
            await control.shutdown()
            throw error
        }
        await control.shutdown()
        var result = measurement
        result.notes.append(
            try await onDedicatedThread("rkafka-bench-verify") {
                try verifyOutputCount(env, topic: output, expected: expected, reader: "\(env.connectorGroup)-verify")
            })
        return result
    }
}
