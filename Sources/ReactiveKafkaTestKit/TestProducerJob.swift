import CRdKafka
import ReactiveKafka
import Synchronization

/// One ``TestData/produce(bootstrapServers:topic:records:partition:roundRobinOver:)``: its
/// input checks, its blocking run, and its cancellation (from any thread).
final class TestProducerJob: Sendable {
    let bootstrapServers: String
    let topic: String
    let records: [(key: String?, value: String)]
    let partition: Int32?
    let partitions: Int32?

    /// A librdkafka producer handle, which any thread may use.
    private struct Handle: @unchecked Sendable {
        let pointer: OpaquePointer
    }

    private struct State {
        /// The producer while the run has one: a cancellation purges it.
        var producer: Handle?
        var cancelled = false
    }

    private let state = Mutex(State())

    init(
        bootstrapServers: String, topic: String, records: [(key: String?, value: String)], partition: Int32?,
        partitions: Int32?
    ) {
        self.bootstrapServers = bootstrapServers
        self.topic = topic
        self.records = records
        self.partition = partition
        self.partitions = partitions
    }

    /// Rejects what a broker would refuse or librdkafka would misread.
    func check() throws(KafkaError) {
        try TopicName.validate(topic)
        if let partition, partition < 0 {
            throw KafkaError(
                .invalidConfiguration,
                "test producer: partition \(partition) of \(topic) is negative; partitions are numbered from 0, or pass nil"
            )
        }
        if let partitions, partitions < 1 {
            throw KafkaError(
                .invalidConfiguration, "test producer: roundRobinOver needs at least 1 partition, got \(partitions)")
        }
    }

    /// Stops the run: what is queued is purged, and the run throws ``KafkaError/Kind/cancelled``.
    func cancel() {
        state.withLock { s in
            s.cancelled = true
            // librdkafka's purge may be called from any thread; the run destroys the
            // producer only after taking it out of the state, under this lock.
            if let producer = s.producer {
                _ = rd_kafka_purge(producer.pointer, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
            }
        }
    }

    private var isCancelled: Bool { state.withLock { $0.cancelled } }

    /// Produces every record and flushes; blocks the calling thread.
    func run() throws(KafkaError) {
        let conf = try testClientConf(
            [
                ("bootstrap.servers", bootstrapServers), ("linger.ms", "5"), ("log_level", "0"),
                ("queue.buffering.max.messages", "2000000"),
            ],
            client: "test producer")
        var errstr = [CChar](repeating: 0, count: 512)
        guard let producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errstr, errstr.count) else {
            throw KafkaError(.fatal, "test producer: \(errorText(errstr))")
        }
        let cancelledAlready = state.withLock { s -> Bool in
            s.producer = Handle(pointer: producer)
            return s.cancelled
        }
        defer {
            state.withLock { $0.producer = nil }
            rd_kafka_destroy(producer)
        }
        if cancelledAlready { throw KafkaError(.cancelled, "test producer: cancelled") }
        guard let rkt = rd_kafka_topic_new(producer, topic, nil) else {
            throw KafkaError(
                .invalidConfiguration,
                "test producer: librdkafka refused topic \(topic): \(String(cString: rd_kafka_err2str(rd_kafka_last_error())))"
            )
        }
        defer { rd_kafka_topic_destroy(rkt) }
        for (i, record) in records.enumerated() {
            if isCancelled {
                throw KafkaError(.cancelled, "test producer: cancelled after \(i) of \(records.count) records")
            }
            try produce(
                record, to: partition ?? partitions.map { Int32(i) % $0 } ?? RD_KAFKA_PARTITION_UA, rkt, producer)
        }
        let err = rd_kafka_flush(producer, 30_000)
        if isCancelled { throw KafkaError(.cancelled, "test producer: cancelled before every record was acknowledged") }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(.deliveryFailed, "test producer flush: \(String(cString: rd_kafka_err2str(err)))")
        }
    }

    /// Enqueues one record, serving delivery reports while librdkafka's queue is full.
    private func produce(
        _ record: (key: String?, value: String), to target: Int32, _ rkt: OpaquePointer, _ producer: OpaquePointer
    ) throws(KafkaError) {
        var value = Array(record.value.utf8)
        let key = record.key.map { Array($0.utf8) }
        while true {
            let result = value.withUnsafeMutableBytes { v in
                guard var key else {
                    return rd_kafka_produce(rkt, target, RD_KAFKA_MSG_F_COPY, v.baseAddress, v.count, nil, 0, nil)
                }
                return key.withUnsafeMutableBytes { k in
                    rd_kafka_produce(
                        rkt, target, RD_KAFKA_MSG_F_COPY, v.baseAddress, v.count, k.baseAddress, k.count, nil)
                }
            }
            if result == 0 { break }
            let err = rd_kafka_last_error()
            guard err == RD_KAFKA_RESP_ERR__QUEUE_FULL else {
                throw KafkaError(.deliveryFailed, "test producer: \(String(cString: rd_kafka_err2str(err)))")
            }
            if isCancelled { throw KafkaError(.cancelled, "test producer: cancelled") }
            // Serving delivery reports frees queue space; it returns as soon as one is served.
            rd_kafka_poll(producer, 10)
        }
        rd_kafka_poll(producer, 0)
    }
}
