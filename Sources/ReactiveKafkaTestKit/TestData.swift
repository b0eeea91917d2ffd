import CRdKafka
import ReactiveKafka

/// Seeds and reads topics directly with librdkafka, independent of the
/// connector's own sources and flows, so tests can check the connector
/// against something it did not write itself.
///
/// Each operation comes twice. The `async` one runs librdkafka's blocking calls on a
/// thread of its own, so a test never holds a thread of Swift's cooperative pool while a
/// broker answers; the compiler picks it in async code. The synchronous one blocks the
/// calling thread: use it only outside async code (a synchronous helper, a command-line tool).
/// Bad input (an invalid topic name, a negative partition) throws
/// ``KafkaError/Kind/invalidConfiguration`` before anything is sent.
public enum TestData {
    /// Writes `records` (key, value) to `topic` and waits until all are acknowledged
    /// (at most 30 s). `partition` nil spreads records round-robin over `partitions`
    /// partitions (which must exist) — or by key hash when `partitions` is nil.
    ///
    /// Cancelling the task purges what is not yet written and throws ``KafkaError/Kind/cancelled``
    /// at once; the client ends on its own thread.
    public static func produce(
        bootstrapServers: String, topic: String, records: [(key: String?, value: String)],
        partition: Int32? = nil, roundRobinOver partitions: Int32? = nil
    ) async throws(KafkaError) {
        let job = TestProducerJob(
            bootstrapServers: bootstrapServers, topic: topic, records: records, partition: partition,
            partitions: partitions)
        try job.check()
        try await DedicatedThread.run(name: "rk-test-produce", onCancel: job.cancel) { () throws(KafkaError) in
            try job.run()
        }
    }

    /// Blocking ``produce(bootstrapServers:topic:records:partition:roundRobinOver:)`` for code
    /// outside async contexts: it holds the calling thread for up to 30 s.
    public static func produce(
        bootstrapServers: String, topic: String, records: [(key: String?, value: String)],
        partition: Int32? = nil, roundRobinOver partitions: Int32? = nil
    ) throws(KafkaError) {
        let job = TestProducerJob(
            bootstrapServers: bootstrapServers, topic: topic, records: records, partition: partition,
            partitions: partitions)
        try job.check()
        try job.run()
    }

    /// The committed offsets (next offset to read) of `group` for `partitions` partitions
    /// of `topic`, waiting at most 10 s for the answer; partitions without a commit are
    /// absent (all of them when the group does not exist).
    ///
    /// Cancelling the task throws ``KafkaError/Kind/cancelled`` at once; the look-up ends on its own thread.
    public static func committedOffsets(bootstrapServers: String, group: String, topic: String, partitions: Int32)
        async throws(KafkaError) -> [Int32: Int64]
    {
        try CommittedOffsetsLookup.check(group: group, topic: topic, partitions: partitions)
        return try await DedicatedThread.run(name: "rk-test-offsets", onCancel: {}) { () throws(KafkaError) in
            try CommittedOffsetsLookup.run(
                bootstrapServers: bootstrapServers, group: group, topic: topic, partitions: partitions)
        }
    }

    /// Blocking ``committedOffsets(bootstrapServers:group:topic:partitions:)`` for code outside
    /// async contexts: it holds the calling thread for up to 10 s.
    public static func committedOffsets(bootstrapServers: String, group: String, topic: String, partitions: Int32)
        throws(KafkaError) -> [Int32: Int64]
    {
        try CommittedOffsetsLookup.check(group: group, topic: topic, partitions: partitions)
        return try CommittedOffsetsLookup.run(
            bootstrapServers: bootstrapServers, group: group, topic: topic, partitions: partitions)
    }

    /// Commits `offsets` (the next offset to read, per partition of `topic`) for `group`
    /// without joining it, as a simple consumer does. The group must have no members: the
    /// coordinator refuses a member-less commit to a group that has them.
    ///
    /// Cancelling the task throws ``KafkaError/Kind/cancelled`` at once; the commit ends on its own thread.
    public static func commit(bootstrapServers: String, group: String, topic: String, offsets: [Int32: Int64])
        async throws(KafkaError)
    {
        try OffsetsCommit.check(group: group, topic: topic, offsets: offsets)
        try await DedicatedThread.run(name: "rk-test-commit", onCancel: {}) { () throws(KafkaError) in
            try OffsetsCommit.run(bootstrapServers: bootstrapServers, group: group, topic: topic, offsets: offsets)
        }
    }

    /// Blocking ``commit(bootstrapServers:group:topic:offsets:)`` for code outside async contexts.
    public static func commit(bootstrapServers: String, group: String, topic: String, offsets: [Int32: Int64])
        throws(KafkaError)
    {
        try OffsetsCommit.check(group: group, topic: topic, offsets: offsets)
        try OffsetsCommit.run(bootstrapServers: bootstrapServers, group: group, topic: topic, offsets: offsets)
    }
}

/// librdkafka's answer to a configuration or creation call, as text.
func errorText(_ buffer: [CChar]) -> String {
    buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

/// A configuration with `properties`, or a typed error naming the property librdkafka refused.
func testClientConf(_ properties: [(String, String)], client: String) throws(KafkaError) -> OpaquePointer {
    guard let conf = rd_kafka_conf_new() else {
        throw KafkaError(.fatal, "\(client): librdkafka could not allocate a configuration")
    }
    var errstr = [CChar](repeating: 0, count: 512)
    for (key, value) in properties where rd_kafka_conf_set(conf, key, value, &errstr, errstr.count) != RD_KAFKA_CONF_OK
    {
        rd_kafka_conf_destroy(conf)
        throw KafkaError(.invalidConfiguration, "\(client): \(key) refused: \(errorText(errstr))")
    }
    return conf
}

enum CommittedOffsetsLookup {
    static func check(group: String, topic: String, partitions: Int32) throws(KafkaError) {
        try TopicName.validate(topic)
        guard !group.isEmpty else {
            throw KafkaError(.invalidConfiguration, "reading committed offsets needs a group id, got an empty one")
        }
        guard partitions >= 1 else {
            throw KafkaError(
                .invalidConfiguration,
                "reading committed offsets of \(topic) needs at least 1 partition, got \(partitions)")
        }
    }

    static func run(bootstrapServers: String, group: String, topic: String, partitions: Int32) throws(KafkaError)
        -> [Int32: Int64]
    {
        let conf = try testClientConf(
            [("bootstrap.servers", bootstrapServers), ("group.id", group), ("log_level", "0")], client: "test consumer")
        var errstr = [CChar](repeating: 0, count: 512)
        // rd_kafka_new takes the configuration, and destroys it when it fails.
        guard let consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, &errstr, errstr.count) else {
            throw KafkaError(.fatal, "test consumer: \(errorText(errstr))")
        }
        defer { rd_kafka_destroy(consumer) }
        guard let list = rd_kafka_topic_partition_list_new(partitions) else {
            throw KafkaError(.fatal, "test consumer: librdkafka could not allocate a partition list")
        }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for p in 0..<partitions { _ = rd_kafka_topic_partition_list_add(list, topic, p) }
        let err = rd_kafka_committed(consumer, list, 10_000)
        // A group that has never committed has no offsets: Kafka answers each partition with
        // none, some brokers (franz-go's kfake) answer GROUP_ID_NOT_FOUND for the whole group.
        if err == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND { return [:] }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(.kafka, "reading committed offsets: \(String(cString: rd_kafka_err2str(err)))")
        }
        var result: [Int32: Int64] = [:]
        for i in 0..<Int(list.pointee.cnt) where list.pointee.elems[i].offset >= 0 {
            result[list.pointee.elems[i].partition] = list.pointee.elems[i].offset
        }
        return result
    }
}

enum OffsetsCommit {
    static func check(group: String, topic: String, offsets: [Int32: Int64]) throws(KafkaError) {
        try TopicName.validate(topic)
        guard !group.isEmpty else {
            throw KafkaError(.invalidConfiguration, "committing offsets needs a group id, got an empty one")
        }
        if let (partition, offset) = offsets.first(where: { $0.key < 0 || $0.value < 0 }) {
            throw KafkaError(
                .invalidConfiguration,
                "committing offsets of \(topic): partition \(partition) offset \(offset) is negative; partitions and offsets start at 0"
            )
        }
    }

    static func run(bootstrapServers: String, group: String, topic: String, offsets: [Int32: Int64]) throws(KafkaError)
    {
        let conf = try testClientConf(
            [("bootstrap.servers", bootstrapServers), ("group.id", group), ("log_level", "0")], client: "test committer"
        )
        var errstr = [CChar](repeating: 0, count: 512)
        // rd_kafka_new takes the configuration, and destroys it when it fails.
        guard let consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, &errstr, errstr.count) else {
            throw KafkaError(.fatal, "test committer: \(errorText(errstr))")
        }
        defer { rd_kafka_destroy(consumer) }
        guard let list = rd_kafka_topic_partition_list_new(Int32(offsets.count)) else {
            throw KafkaError(.fatal, "test committer: librdkafka could not allocate a partition list")
        }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for (partition, offset) in offsets {
            rd_kafka_topic_partition_list_add(list, topic, partition).pointee.offset = offset
        }
        // Synchronous commit: rd_kafka_commit returns once the coordinator answered.
        let err = rd_kafka_commit(consumer, list, 0)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(.commitFailed, "test committer: \(String(cString: rd_kafka_err2str(err)))")
        }
    }
}
