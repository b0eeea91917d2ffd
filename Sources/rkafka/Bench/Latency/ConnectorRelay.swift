import ReactiveKafka
import StreamKit
import Synchronization

/// The connector side of the latency scenario: the at-least-once pipeline of
/// `at-least-once-pipeline` (`committableSource → map(ProducerMessage.single) → flexiFlow →
/// map { $0.passThrough } → Committer.sink`), same properties and parallelism, relaying the input
/// topic to the connector's output topic until drained. The source is assigned every input
/// partition and commits in the connector's group without joining it. Its producer sends one
/// warm-up record (too short for a stamp; the reader skips it) so that the first relayed record
/// does not wait for the output topic's metadata, as the raw relay learns it first.
final class ConnectorRelay: Sendable {
    private let control: DrainingControl<Void>
    private let producer: KafkaProducer<KafkaBytes, KafkaBytes>
    private let ending: RelayEnding
    private let watcher: Task<Void, Never>

    static func start(_ env: BenchEnvironment) async throws -> ConnectorRelay {
        let output = env.connectorOutputTopic
        let producerSettings = ProducerSettings<KafkaBytes, KafkaBytes>(properties: env.producerSettingsProperties)
            .withParallelism(AtLeastOncePipelineBench.parallelism)
        let producer = try KafkaProducer(producerSettings)
        do {
            _ = try await producer.send(
                ProducerRecord(topic: output, partition: 0, value: KafkaBytes([UInt8(ascii: "w")])))
        } catch {
            await producer.close()
            throw error
        }
        // Every input partition assigned, as the raw relay does: no group join to wait for.
        let partitions = Set((0..<Int32(env.parameters.partitions)).map { TopicPartition(env.inputTopic, $0) })
        let control = Consumer.committableSource(env.connectorConsumerSettings, subscription: .assignment(partitions))
            .map { message in
                ProducerMessage.single(
                    ProducerRecord(
                        topic: output, partition: message.record.partition, key: message.record.key,
                        value: message.record.value),
                    passThrough: message.committableOffset)
            }
            .via(Producer.flexiFlow(producerSettings, producer: producer))
            .map { $0.passThrough } // a closure, not a key path: see AtLeastOncePipelineBench
            .to(Committer.sink(CommitterSettings()))
            .start()
        return ConnectorRelay(control: control, producer: producer)
    }

    private init(control: DrainingControl<Void>, producer: KafkaProducer<KafkaBytes, KafkaBytes>) {
        self.control = control
        self.producer = producer
        let ending = RelayEnding()
        self.ending = ending
        // Ends with the stream, which a drain or a shutdown always ends.
        watcher = Task {
            switch await control.streamCompletion.result {
            case .success: ending.record("the connector pipeline completed")
            case .failure(let error): ending.record("the connector pipeline failed: \(error)")
            }
        }
    }

    /// How the pipeline ended, once it has: before ``drain()`` only a failure ends it.
    var ended: String? { ending.description }

    /// Stops consuming, lets what was consumed be produced and committed, then closes the producer.
    func drain() async throws {
        do {
            try await control.drainAndShutdown()
        } catch {
            await producer.close()
            throw error
        }
        await producer.close()
        await watcher.value
    }

    /// Ends at once, without waiting for what is in flight (after a failure elsewhere).
    func shutdown() async {
        await control.shutdown()
        await producer.close()
        await watcher.value
    }
}

/// How a relay under test ended, readable from any thread (the load generator checks it while
/// it waits for the relay's first record).
final class RelayEnding: Sendable {
    private let state = Mutex<String?>(nil)

    /// The first description recorded, if any.
    var description: String? { state.withLock { $0 } }

    func record(_ description: String) {
        state.withLock { $0 = $0 ?? description }
    }
}
