import CRdKafka
import Synchronization

/// Asks the cluster about topics, partitions and offsets: Alpakka's `MetadataClient`.
///
/// librdkafka answers these questions with blocking calls; they run one at a time on the
/// client's own thread, never on Swift's cooperative pool, and each question is answered
/// or fails within `timeout` of being asked (a question needing several librdkafka calls,
/// such as offsets of many partitions, shares that one timeout). Create one client and
/// reuse it; ``close()`` releases the connection (also done on deinit).
///
/// ```swift
/// let metadata = try MetadataClient(consumerSettings)
/// let ends = try await metadata.endOffsets([TopicPartition("orders", 0)])
/// ```
public final class MetadataClient: Sendable {
    /// A topic and its partitions.
    public struct Topic: Sendable, Hashable {
        /// The topic's name.
        public let name: String
        /// Its partition numbers, ascending.
        public let partitions: [Int32]

        /// A topic named `name` with `partitions`.
        public init(name: String, partitions: [Int32]) {
            self.name = name
            self.partitions = partitions
        }
    }

    private let handle: Mutex<HandleBox>
    /// Runs the blocking calls and the client's destruction.
    private let thread = BlockingCallThread(name: "rkafka-metadata")
    private let timeout: Duration

    private struct HandleBox: @unchecked Sendable {
        var rk: OpaquePointer?
    }

    /// A client using the connection properties (and group, for committed
    /// offsets) of `settings`. Throws `.invalidConfiguration` for bad properties.
    public init<Key, Value>(_ settings: ConsumerSettings<Key, Value>, timeout: Duration = .seconds(10))
        throws(KafkaError)
    {
        try settings.validate()
        var properties = settings.properties
        properties["enable.auto.commit"] = "false"
        let conf = try KafkaClientConfiguration.make(properties, client: "metadata client")
        let rk = try KafkaClientConfiguration.newClient(
            RD_KAFKA_CONSUMER, conf, properties: properties, client: "metadata client")
        self.handle = Mutex(HandleBox(rk: rk))
        self.timeout = timeout
    }

    deinit {
        close()
        thread.stop()
    }

    /// Releases the client's connections. Later calls fail with `.shutDown`. Idempotent.
    /// The client is destroyed on its own thread after the calls already asked for.
    public func close() {
        let rk = handle.withLock { box -> OpaquePointer? in
            defer { box.rk = nil }
            return box.rk
        }
        if let rk {
            let box = HandleBox(rk: rk)
            thread.submit { rd_kafka_destroy(box.rk) }
        }
    }

    /// Every topic of the cluster (internal ones excluded) with its partitions.
    public func topics() async throws(KafkaError) -> [Topic] {
        try await run { rk, deadline throws(KafkaError) in
            let timeoutMs = try deadline.remainingMilliseconds("listing topics")
            var metadata: UnsafePointer<rd_kafka_metadata>?
            let err = rd_kafka_metadata(rk, 1, nil, &metadata, timeoutMs)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
                throw KafkaError.fromCode(err, "listing topics")
            }
            defer { rd_kafka_metadata_destroy(metadata) }
            return (0..<Int(metadata.pointee.topic_cnt)).compactMap { i -> Topic? in
                let t = metadata.pointee.topics[i]
                let name = String(cString: t.topic)
                guard t.err == RD_KAFKA_RESP_ERR_NO_ERROR, !name.hasPrefix("__") else { return nil }
                let partitions = (0..<Int(t.partition_cnt)).map { t.partitions[$0].id }.sorted()
                return Topic(name: name, partitions: partitions)
            }.sorted { $0.name < $1.name }
        }
    }

    /// The partition numbers of `topic`; throws if the topic does not exist.
    public func partitions(of topic: String) async throws(KafkaError) -> [Int32] {
        try TopicName.validate(topic)
        return try await run { rk, deadline throws(KafkaError) in
            let timeoutMs = try deadline.remainingMilliseconds("describing topic \(topic)")
            guard let rkt = rd_kafka_topic_new(rk, topic, nil) else {
                throw KafkaError(.kafka, "invalid topic name \"\(topic)\"")
            }
            defer { rd_kafka_topic_destroy(rkt) }
            var metadata: UnsafePointer<rd_kafka_metadata>?
            let err = rd_kafka_metadata(rk, 0, rkt, &metadata, timeoutMs)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
                throw KafkaError.fromCode(err, "describing topic \(topic)")
            }
            defer { rd_kafka_metadata_destroy(metadata) }
            guard metadata.pointee.topic_cnt == 1 else { throw KafkaError(.kafka, "topic \(topic) not found") }
            let t = metadata.pointee.topics[0]
            if t.err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError.fromCode(t.err, "describing topic \(topic)") }
            return (0..<Int(t.partition_cnt)).map { t.partitions[$0].id }.sorted()
        }
    }

    /// The first offset still stored in each partition.
    public func beginningOffsets(_ partitions: [TopicPartition]) async throws(KafkaError) -> [TopicPartition: Int64] {
        try await watermarks(partitions).mapValues(\.low)
    }

    /// The offset after the last record of each partition (the high watermark).
    public func endOffsets(_ partitions: [TopicPartition]) async throws(KafkaError) -> [TopicPartition: Int64] {
        try await watermarks(partitions).mapValues(\.high)
    }

    private func watermarks(_ partitions: [TopicPartition]) async throws(KafkaError) -> [TopicPartition: (
        low: Int64, high: Int64
    )] {
        try await run { rk, deadline throws(KafkaError) in
            var result: [TopicPartition: (low: Int64, high: Int64)] = [:]
            // One look-up a partition, all within the one timeout (not a timeout each).
            for tp in partitions {
                var low: Int64 = -1
                var high: Int64 = -1
                let timeoutMs = try deadline.remainingMilliseconds("querying offsets of \(tp)")
                let err = rd_kafka_query_watermark_offsets(rk, tp.topic, tp.partition, &low, &high, timeoutMs)
                guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                    throw KafkaError.fromCode(err, "querying offsets of \(tp)")
                }
                result[tp] = (low, high)
            }
            return result
        }
    }

    /// The committed offset (next offset to read) of the settings' consumer
    /// group for each partition; partitions without a commit are absent.
    public func committedOffsets(_ partitions: [TopicPartition]) async throws(KafkaError) -> [TopicPartition: Int64] {
        try await run { rk, deadline throws(KafkaError) in
            let timeoutMs = try deadline.remainingMilliseconds("reading committed offsets")
            let list = PartitionList.make(partitions)
            defer { rd_kafka_topic_partition_list_destroy(list) }
            let err = rd_kafka_committed(rk, list, timeoutMs)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw KafkaError.fromCode(err, "reading committed offsets (is group.id set?)")
            }
            return Self.offsets(list)
        }
    }

    /// For each partition, the offset of the first record whose timestamp is at
    /// or after the given milliseconds since the epoch; absent when there is none.
    public func offsetsForTimes(_ timestamps: [TopicPartition: Int64]) async throws(KafkaError) -> [TopicPartition:
        Int64]
    {
        try await run { rk, deadline throws(KafkaError) in
            let timeoutMs = try deadline.remainingMilliseconds("looking up offsets for times")
            let list = PartitionList.make(timestamps.mapValues { CommitPosition(nextOffset: $0, metadata: nil) })
            defer { rd_kafka_topic_partition_list_destroy(list) }
            let err = rd_kafka_offsets_for_times(rk, list, timeoutMs)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw KafkaError.fromCode(err, "looking up offsets for times")
            }
            return Self.offsets(list)
        }
    }

    private static func offsets(_ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> [TopicPartition:
        Int64]
    {
        var result: [TopicPartition: Int64] = [:]
        for i in 0..<Int(list.pointee.cnt) {
            let e = list.pointee.elems[i]
            if e.err == RD_KAFKA_RESP_ERR_NO_ERROR, e.offset >= 0 {
                result[TopicPartition(String(cString: e.topic), e.partition)] = e.offset
            }
        }
        return result
    }

    /// Runs blocking librdkafka calls on the client's thread, within `timeout` of now
    /// (time spent waiting behind earlier calls counts).
    private func run<T: Sendable>(
        _ body: @escaping @Sendable (OpaquePointer, BlockingCallDeadline) throws(KafkaError) -> T
    ) async throws(KafkaError) -> T {
        let deadline = BlockingCallDeadline(timeout: timeout, client: "metadata client")
        let result: Result<T, KafkaError> = await thread.run {
            // The handle is read on the thread, so close() (which destroys on the same thread) cannot race a call.
            guard let rk = self.handle.withLock({ $0.rk }) else {
                return .failure(KafkaError(.shutDown, "the metadata client was closed"))
            }
            do throws(KafkaError) {
                return .success(try body(rk, deadline))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }
}
