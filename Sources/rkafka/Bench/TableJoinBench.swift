import CRdKafka
import ReactiveKafka
import StreamKit

/// `table-join`: a stream–table join. The seeded input is read and each record looked up, by
/// `offset % keys`, in a table of `keys` rows. Baseline: the raw consume loop looking each
/// record up in a Swift dictionary built beforehand. Connector: `Consumer.plainSource(…)
/// .leftJoin(table, key:)` against a ``KafkaTable`` restored from a topic of `keys` records
/// (its restore is not measured). Both count the hits, which must equal the messages.
enum TableJoinBench {
    static let keys: Int64 = 10_000

    static let scenario = KafkaBenchScenario(
        name: "table-join",
        baselineDescription: "raw librdkafka consume loop + Swift dictionary look-up per message",
        consumesSeededInput: true,
        baseline: { env in try baseline(env) },
        connector: Connector()
    )

    static func baseline(_ env: BenchEnvironment) throws -> BenchMeasurement {
        let rows = Dictionary(uniqueKeysWithValues: (0..<keys).map { ($0, KafkaBytes("customer-\($0)")) })
        let expected = env.parameters.messages
        let consumer = try RawConsumer(
            env, group: env.baselineGroup, topic: env.inputTopic, client: "baseline consumer")
        defer { consumer.close() }
        let batch = UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>.allocate(
            capacity: RawBaselines.consumeBatchSize)
        defer { batch.deallocate() }
        var meter = PhaseMeter()
        var got = 0
        var hits = 0
        var lastProgress = ContinuousClock.now
        while got < expected {
            let k = rd_kafka_consume_batch_queue(
                consumer.queue, 1000, batch, min(RawBaselines.consumeBatchSize, expected - got))
            if k > 0 {
                meter.begin()
                lastProgress = .now
                for i in 0..<k {
                    let message = batch[i]!
                    if message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                        got += 1
                        if rows[message.pointee.offset % keys] != nil { hits += 1 }
                    }
                    rd_kafka_message_destroy(message)
                }
            } else if ContinuousClock.now - lastProgress > env.parameters.stallTimeout {
                throw BenchError(
                    "table-join baseline: no message for \(env.parameters.stallTimeout) after \(got) of \(expected)")
            }
        }
        guard hits == expected else { throw BenchError("table-join baseline: \(hits) hits for \(expected) messages") }
        return meter.finish(messages: got, notes: ["\(keys) table rows"])
    }

    /// The connector side: restores the table (not measured), then joins the input with it.
    struct Connector: ConnectorBenchmark {
        func run(_ env: BenchEnvironment) async throws -> BenchMeasurement {
            let table = try await TableJoinBench.restoredTable(env)
            let running = Task { try await table.run() }
            defer { table.close() }
            try await table.ready()
            let expected = env.parameters.messages
            let joined = Consumer.plainSource(env.connectorConsumerSettings, subscription: .topics(env.inputTopic))
                .leftJoin(table, key: { $0.offset % TableJoinBench.keys })
            var meter = PhaseMeter()
            var got = 0
            var hits = 0
            do {
                for try await pair in joined {
                    meter.begin()
                    got += 1
                    if pair.value != nil { hits += 1 }
                    if got == expected { break }
                }
            } catch {
                await joined.materialized.shutdown()
                throw error
            }
            let measurement = meter.finish(messages: got, notes: ["\(TableJoinBench.keys) table rows"])
            await joined.materialized.shutdown()
            table.close()
            try await running.value
            guard hits == expected else { throw BenchError("table-join: \(hits) hits for \(expected) messages") }
            return measurement
        }
    }

    /// A table of `keys` rows (key: the decimal number, value "customer-<key>"), written to a
    /// topic of its own; not yet running.
    static func restoredTable(_ env: BenchEnvironment) async throws -> KafkaTable<Int64, KafkaBytes> {
        let topic = "\(env.inputTopic)-table"
        _ = try env.connection.createTopic(topic, partitions: env.parameters.partitions)
        let producer = try KafkaProducer(
            ProducerSettings(
                keySerializer: .string, valueSerializer: .string, properties: env.producerSettingsProperties))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for key in 0..<TableJoinBench.keys {
                group.addTask {
                    _ = try await producer.send(
                        ProducerRecord(topic: topic, key: "\(key)", value: "customer-\(key)"))
                }
            }
            try await group.waitForAll()
        }
        await producer.close()
        let settings = ConsumerSettings(
            keyDeserializer: Deserializer<Int64> { bytes in
                guard let text = bytes?.string, let key = Int64(text) else {
                    throw DeserializationFailure("not a decimal key")
                }
                return key
            },
            valueDeserializer: .bytes,
            properties: env.consumerSettingsProperties(group: env.connectorGroup))
        return try KafkaTable(topic: topic, settings: settings)
    }
}
