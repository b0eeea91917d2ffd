import CRdKafka
import ReactiveKafka

/// Reads back the connector group's committed offsets of the input topic (after its consumer
/// is closed); they must add up to the number of messages.
func verifyConnectorCommits(_ env: BenchEnvironment) throws -> String {
    try verifyCommitted(env, group: env.connectorGroup, expected: env.parameters.messages)
}

/// Reads back `group`'s committed offsets of the input topic (after its consumer is closed);
/// they must add up to `expected`.
func verifyCommitted(_ env: BenchEnvironment, group: String, expected: Int) throws -> String {
    let reader = try RawConsumer(
        env, group: group, topic: env.inputTopic, client: "bench commit reader", subscribe: false)
    defer { reader.close() }
    return try reader.verifyCommitted(partitions: env.parameters.partitions, expected: expected)
}

/// The end offsets of `topic`'s partitions (a fresh topic, so each is the partition's record
/// count) must add up to `expected`: no record written twice, none missing. Blocking: run it on
/// a dedicated thread. `reader` names the consumer group of the handle that asks (it never joins it).
func verifyOutputCount(_ env: BenchEnvironment, topic: String, expected: Int, reader group: String) throws -> String {
    let reader = try RawConsumer(env, group: group, topic: topic, client: "bench output reader", subscribe: false)
    defer { reader.close() }
    var total: Int64 = 0
    for partition in 0..<Int32(env.parameters.partitions) {
        var low: Int64 = 0
        var high: Int64 = 0
        let err = rd_kafka_query_watermark_offsets(reader.handle, topic, partition, &low, &high, 30_000)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError(
                .kafka, "end offsets of \(topic)-\(partition): \(RawClient.describe(err))", code: Int32(err.rawValue))
        }
        total += high
    }
    guard total == Int64(expected) else {
        throw BenchError("\(topic) holds \(total) records, expected \(expected)")
    }
    return "output verified (\(total) records)"
}
