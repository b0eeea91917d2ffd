import CRdKafka
import Foundation
import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Synchronization

/// `event-sourced-recovery`: how long an ``EventSourced`` flow takes to recover its state from a
/// changelog of `--messages` events (10,000 keys, `"1"` each, every key in one partition; a
/// key's state is the sum of its events), seeded by a raw producer first (not measured).
///
/// Recovery is internal to the flow (it runs before its partitions' first input), so the
/// connector side is timed by the flow's own `recover_state` metric: from the start of the
/// member's recovery (all its partitions, read at once by one reader) to its end. As in every
/// scenario, the group join is not measured; the notes also show the flow's start to the
/// outcomes of one command per partition, written after the changelog (join, transactional
/// producer's start, recovery, the commands' transactions), and the same over an empty
/// changelog, in the same run. Each outcome must carry its key's recovered state plus the
/// command. Baseline: one raw librdkafka consumer assigned every changelog partition from the
/// beginning (read_committed, as the flow reads), folding the same events into a dictionary
/// until every partition's end, timed from its creation.
enum EventSourcedRecoveryBench {
    static let keys = 10_000

    static let scenario = KafkaBenchScenario(
        name: "event-sourced-recovery",
        baselineDescription: "raw librdkafka consumer reading every changelog partition to its end into a dictionary",
        consumesSeededInput: false,
        baseline: { env in try baseline(env) },
        connector: Connector(),
        seed: { env in try seed(env) }
    )

    /// Event `i` is of key `i % keys`, written to partition `key % partitions`.
    static func partition(ofKey key: Int, _ env: BenchEnvironment) -> Int32 { Int32(key % env.parameters.partitions) }

    /// A key as the changelog holds it: 8 decimal digits.
    static func keyText(_ key: Int) -> String {
        let digits = String(key)
        return String(repeating: "0", count: max(0, 8 - digits.count)) + digits
    }

    /// The state every key must recover: how many events it has.
    static func events(ofKey key: Int, total: Int) -> Int { total / keys + (key < total % keys ? 1 : 0) }

    /// Writes the changelog (`env.inputTopic`) with the bench's raw producer.
    static func seed(_ env: BenchEnvironment) throws {
        let producer = try RawProducer(env, client: "changelog seeder")
        let topicName = strdup(env.inputTopic)!
        defer { free(topicName) }
        let key = UnsafeMutablePointer<UInt8>.allocate(capacity: 8)
        defer { key.deallocate() }
        var value = UInt8(ascii: "1")
        let vus = UnsafeMutablePointer<rd_kafka_vu_t>.allocate(capacity: 5)
        vus.initialize(repeating: rd_kafka_vu_t(), count: 5)
        defer { vus.deallocate() }
        vus[0].vtype = RD_KAFKA_VTYPE_TOPIC
        vus[0].u.cstr = UnsafePointer(topicName)
        vus[1].vtype = RD_KAFKA_VTYPE_PARTITION
        vus[2].vtype = RD_KAFKA_VTYPE_KEY
        vus[2].u.mem.ptr = UnsafeMutableRawPointer(key)
        vus[2].u.mem.size = 8
        vus[3].vtype = RD_KAFKA_VTYPE_VALUE
        vus[4].vtype = RD_KAFKA_VTYPE_MSGFLAGS
        vus[4].u.i = RD_KAFKA_MSG_F_COPY
        try producer.learnMetadata(of: env.inputTopic)
        let total = env.parameters.messages
        try withUnsafeMutablePointer(to: &value) { value in
            vus[3].u.mem.ptr = UnsafeMutableRawPointer(value)
            vus[3].u.mem.size = 1
            for i in 0..<total {
                var k = i % keys
                vus[1].u.i32 = partition(ofKey: k, env)
                for digit in (0..<8).reversed() {
                    key[digit] = UInt8(ascii: "0") + UInt8(k % 10)
                    k /= 10
                }
                try RawBaselines.produce(producer.handle, vus, 5, topic: env.inputTopic)
                rd_kafka_poll(producer.handle, 0)
            }
        }
        rd_kafka_flush(producer.handle, 120_000)
        try producer.deliveries.check(expected: total, topic: env.inputTopic)
    }

    static func baseline(_ env: BenchEnvironment) throws -> BenchMeasurement {
        // A reader that reads to the end: no long-poll at the end (fetch.wait.max.ms), and
        // the first offset given (the changelog starts at 0) instead of a logical one, which
        // librdkafka 2.0.2 resolves on a 500 ms timer when the leader is not known yet.
        var reader = env
        reader.consumerOverrides += [
            ("enable.partition.eof", "true"), ("isolation.level", "read_committed"), ("fetch.wait.max.ms", "10"),
        ]
        let partitions = env.parameters.partitions
        let batch = UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>.allocate(
            capacity: RawBaselines.consumeBatchSize)
        defer { batch.deallocate() }
        var states: [Int: Int] = [:]
        states.reserveCapacity(keys)
        var meter = PhaseMeter()
        meter.begin()
        let consumer = try RawConsumer(
            reader, group: env.baselineGroup, topic: env.inputTopic, client: "baseline changelog reader",
            subscribe: false)
        defer { consumer.close() }
        try consumer.assign(partitions: partitions, at: 0)
        var ended = Set<Int32>()
        var read = 0
        var lastProgress = ContinuousClock.now
        while ended.count < partitions {
            // Every event and one end per partition, as messages: never ask for more than are still
            // due, or the last call would wait out its timeout for a batch that cannot fill.
            let due = env.parameters.messages + partitions - read - ended.count
            let k = rd_kafka_consume_batch_queue(
                consumer.queue, 1000, batch, max(1, min(RawBaselines.consumeBatchSize, due)))
            for i in 0..<max(k, 0) {
                let message = batch[i]!
                defer { rd_kafka_message_destroy(message) }
                switch message.pointee.err {
                case RD_KAFKA_RESP_ERR_NO_ERROR:
                    read += 1
                    let key = decimal(message.pointee.key, message.pointee.key_len)
                    states[key, default: 0] += decimal(message.pointee.payload, message.pointee.len)
                    lastProgress = .now
                case RD_KAFKA_RESP_ERR__PARTITION_EOF:
                    ended.insert(message.pointee.partition)
                default:
                    throw BenchError(
                        "event-sourced-recovery baseline: \(RawClient.describe(message.pointee.err)) after \(read) events"
                    )
                }
            }
            if ContinuousClock.now - lastProgress > env.parameters.stallTimeout {
                throw BenchError(
                    "event-sourced-recovery baseline: no event for \(env.parameters.stallTimeout) after \(read)")
            }
        }
        let measurement = meter.finish(messages: read, notes: ["\(partitions) partitions read at once"])
        let total = env.parameters.messages
        guard read == total, states.count == min(keys, total),
            states.allSatisfy({ $0.value == events(ofKey: $0.key, total: total) })
        else {
            throw BenchError("event-sourced-recovery baseline: \(read) events, \(states.count) keys: not the changelog")
        }
        return measurement
    }

    /// The number in `length` ASCII digits at `bytes` (0 for none).
    @inline(__always)
    static func decimal(_ bytes: UnsafeMutableRawPointer?, _ length: Int) -> Int {
        guard let bytes else { return 0 }
        var number = 0
        for i in 0..<length { number = number &* 10 &+ Int(bytes.load(fromByteOffset: i, as: UInt8.self) &- 48) }
        return number
    }
}
