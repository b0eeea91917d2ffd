import Foundation
import ReactiveKafkaTestKit
import StreamKit
import Synchronization
import Testing

@testable import ReactiveKafka

/// The parallel source producing its results (consume → process → produce), on the embedded
/// cluster or a Kafka broker (`KAFKA_BOOTSTRAP_SERVERS=host:port make test-external`): outputs
/// exactly as returned, one key's outputs in offset order, a refused output never committed past,
/// and a drained or failed run resumed without reprocessing what was acknowledged.
@Suite(.serialized) struct ParallelProduceTests {
    typealias Results = ParallelSequence<ProducerResult<String, String, Input>>

    /// An input record, carried to its result.
    struct Input: Hashable, Sendable {
        var partition: Int32
        var offset: Int64
        init(_ record: ConsumerRecord<String, String>) {
            partition = record.partition
            offset = record.offset
        }
        init(partition: Int32, offset: Int64) {
            self.partition = partition
            self.offset = offset
        }
    }

    static func consumer(_ cluster: TestCluster, group: String) -> ConsumerSettings<String, String> {
        ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
            .withBootstrapServers(cluster.bootstrapServers)
            .withGroupId(group)
            .withProperty("auto.offset.reset", "earliest")
            .withProperties(cluster.groupProperties)
    }

    static func producer(_ cluster: TestCluster) -> ProducerSettings<String, String> {
        ProducerSettings(keySerializer: Serializer<String>.string, valueSerializer: .string)
            .withBootstrapServers(cluster.bootstrapServers)
    }

    /// A producer that refuses records above 1,000 bytes (librdkafka's smallest `message.max.bytes`).
    static func smallProducer(_ cluster: TestCluster) -> ProducerSettings<String, String> {
        producer(cluster).withProperty("message.max.bytes", "1000")
    }

    /// Runs a source in a task, keeping the inputs of the results it emits.
    final class Running: Sendable {
        let control: ConsumerControl
        let task: Task<Void, any Error>
        private let inputs: Inputs

        final class Inputs: Sendable { let list = Mutex<[Input]>([]) }

        init(_ source: Source<Results, ConsumerControl>) {
            control = source.materialized
            let inputs = Inputs()
            self.inputs = inputs
            task = Task {
                for try await result in source {
                    // A result comes only once every record of its message was acknowledged.
                    #expect(result.metadata.allSatisfy { $0.offset >= 0 })
                    inputs.list.withLock { $0.append(result.passThrough) }
                }
            }
        }

        var emitted: [Input] { inputs.list.withLock { $0 } }

        func waitFor(_ expected: Int, within limit: Duration = .seconds(60)) async throws -> Bool {
            try await StreamEndTests.eventually(within: limit) { inputs.list.withLock { $0.count } >= expected }
        }

        func drain() async throws { try await control.drainAndShutdown(task) }
    }

    /// The inputs whose outputs are in `topic` (the outputs' values are `"<partition>:<offset>…"`), with how many times.
    static func outputs(_ cluster: TestCluster, _ topic: String) async throws -> [String] {
        try await RawKafka.readAll(topic: topic, bootstrapServers: cluster.bootstrapServers, timeout: .seconds(30))
            .compactMap(\.valueString)
    }

    /// The order numbers written to `topic` per customer key, in the order they were written
    /// (values are `prefix` and the order's number; the README examples' output).
    static func ordersByCustomer(_ cluster: TestCluster, topic: String, prefix: String) async throws -> [String: [Int]]
    {
        var byCustomer: [String: [Int]] = [:]
        for record in try await RawKafka.readAll(topic: topic, bootstrapServers: cluster.bootstrapServers) {
            guard let key = record.keyString, let value = record.valueString else { continue }
            byCustomer[key, default: []].append(Int(value.dropFirst(prefix.count)) ?? -1)
        }
        return byCustomer
    }

    /// Whether each `customer-N` got exactly its orders N, N + 6, … below `orders`, in that order.
    static func eachCustomersOrdersAreInOrder(_ byCustomer: [String: [Int]], orders: Int) -> Bool {
        byCustomer.allSatisfy { customer, list in
            list == Array(stride(from: Int(customer.dropFirst("customer-".count)) ?? -1, to: orders, by: 6))
        }
    }

    static func committed(_ cluster: TestCluster, group: String, topic: String, partitions: Int32) async throws
        -> [Int32: Int64]
    {
        try await TestData.committedOffsets(
            bootstrapServers: cluster.bootstrapServers, group: group, topic: topic, partitions: partitions)
    }

    @Test func everyInputYieldsExactlyTheRecordsItsMessageNamesAndOneResult() async throws {
        let cluster = try TestCluster()
        let input = try cluster.createTopic("pp-exact-in", partitions: 3)
        let output = try cluster.createTopic("pp-exact-out", partitions: 2)
        let group = cluster.name("g-pp-exact")
        try await TestData.produce(
            bootstrapServers: cluster.bootstrapServers, topic: input,
            records: (0..<300).map { (key: "k\($0 % 20)", value: "\($0)") }, roundRobinOver: 3)
        // 0, 1 or 2 records per input, by its value.
        let run = Running(
            Consumer.parallelSource(
                Self.consumer(cluster, group: group), subscription: .topics(input),
                parallel: ParallelSettings(ordering: .key, maxConcurrency: 50), producerSettings: Self.producer(cluster)
            ) { record in
                let n = Int(record.value)!
                let out = { (part: String) in ProducerRecord(topic: output, key: record.key, value: "\(n)\(part)") }
                switch n % 3 {
                case 0: return .passThrough(Input(record))
                case 1: return .single(out(""), passThrough: Input(record))
                default: return .multi([out("a"), out("b")], passThrough: Input(record))
                }
            })
        #expect(try await run.waitFor(300))
        try await run.drain()
        #expect(Set(run.emitted).count == 300)
        #expect(run.emitted.count == 300)
        var expected: [String] = []
        for n in 0..<300 where n % 3 != 0 { expected += n % 3 == 1 ? ["\(n)"] : ["\(n)a", "\(n)b"] }
        #expect(try await Self.outputs(cluster, output).sorted() == expected.sorted())
        #expect(
            try await Self.committed(cluster, group: group, topic: input, partitions: 3) == [0: 100, 1: 100, 2: 100])
    }

    @Test func oneKeysOutputsAreProducedInOffsetOrderUnderRandomLatency() async throws {
        let count = 3_000
        let keys = 100
        let cluster = try TestCluster()
        let input = try cluster.createTopic("pp-order-in", partitions: 4)
        let output = try cluster.createTopic("pp-order-out", partitions: 3)
        let group = cluster.name("g-pp-order")
        // Key k<i>'s records carry 0, 1, 2, … in offset order (one key, one partition).
        try await TestData.produce(
            bootstrapServers: cluster.bootstrapServers, topic: input,
            records: (0..<count).map { (key: "k\($0 % keys)", value: "\($0 / keys)") })
        let run = Running(
            Consumer.parallelSource(
                Self.consumer(cluster, group: group), subscription: .topics(input),
                parallel: ParallelSettings(ordering: .key, maxConcurrency: 200),
                producerSettings: Self.producer(cluster)
            ) { record in
                try await Task.sleep(for: .microseconds(Int.random(in: 0...2_000)))
                return .single(
                    ProducerRecord(topic: output, key: record.key, value: record.value), passThrough: Input(record))
            })
        #expect(try await run.waitFor(count, within: .seconds(120)))
        try await run.drain()
        // One key's outputs share an output partition; read in its offset order, they count up.
        let records = try await RawKafka.readAll(
            topic: output, bootstrapServers: cluster.bootstrapServers, timeout: .seconds(30))
        #expect(records.count == count)
        var sequences: [String: [Int]] = [:]
        for record in records { sequences[record.keyString ?? "", default: []].append(Int(record.valueString!)!) }
        #expect(sequences.count == keys)
        #expect(sequences.values.allSatisfy { $0 == Array(0..<(count / keys)) })
    }

    @Test func withPartitionOrderingOnePartitionsOutputsAreProducedInOffsetOrder() async throws {
        let cluster = try TestCluster()
        let input = try cluster.createTopic("pp-porder-in", partitions: 3)
        let output = try cluster.createTopic("pp-porder-out", partitions: 1)
        let group = cluster.name("g-pp-porder")
        try await TestData.produce(
            bootstrapServers: cluster.bootstrapServers, topic: input,
            records: (0..<600).map { (key: "k\($0)", value: "\($0)") }, roundRobinOver: 3)
        let run = Running(
            Consumer.parallelSource(
                Self.consumer(cluster, group: group), subscription: .topics(input),
                parallel: ParallelSettings(ordering: .partition, maxConcurrency: 50),
                producerSettings: Self.producer(cluster)
            ) { record in
                try await Task.sleep(for: .microseconds(Int.random(in: 0...1_000)))
                let value = "\(record.partition):\(record.offset)"
                return .single(ProducerRecord(topic: output, key: record.key, value: value), passThrough: Input(record))
            })
        #expect(try await run.waitFor(600))
        try await run.drain()
        // One output partition: the order the outputs were written in, each input partition's in offset order.
        var written: [Int32: [Int64]] = [:]
        for value in try await Self.outputs(cluster, output) {
            let parts = value.split(separator: ":")
            written[Int32(parts[0])!, default: []].append(Int64(parts[1])!)
        }
        #expect(written.count == 3)
        #expect(written.values.allSatisfy { $0 == Array(0..<200) })
    }

    @Test func aRefusedOutputIsRetriedThenItsInputDeadLetteredNeverSkipped() async throws {
        let cluster = try TestCluster()
        let input = try cluster.createTopic("pp-dlq-in", partitions: 1)
        let output = try cluster.createTopic("pp-dlq-out", partitions: 1)
        let dlq = try cluster.createTopic("pp-dlq", partitions: 1)
        let group = cluster.name("g-pp-dlq")
        try await TestData.produce(
            bootstrapServers: cluster.bootstrapServers, topic: input,
            records: (0..<10).map { (key: "k\($0)", value: "v\($0)") }, partition: 0)
        let attempts = Atomic<Int>(0)
        let run = Running(
            Consumer.parallelSource(
                Self.consumer(cluster, group: group), subscription: .topics(input),
                parallel: ParallelSettings(retry: ParallelRetry(maxAttempts: 3, initialBackoff: .milliseconds(10))),
                producerSettings: Self.smallProducer(cluster),
                onFailure: .deadLetter(topic: dlq, producer: Self.producer(cluster))
            ) { record in
                // v3's output is larger than the producer's message.max.bytes: refused each time.
                if record.value == "v3" { attempts.add(1, ordering: .relaxed) }
                let value = record.value == "v3" ? String(repeating: "x", count: 2_000) : record.value
                return .single(ProducerRecord(topic: output, key: record.key, value: value), passThrough: Input(record))
            })
        #expect(try await run.waitFor(9))
        #expect(
            try await StreamEndTests.eventually(within: .seconds(10)) {
                (try? TestData.committedOffsets(
                    bootstrapServers: cluster.bootstrapServers, group: group, topic: input, partitions: 1)) == [0: 10]
            })
        try await run.drain()
        #expect(attempts.load(ordering: .relaxed) == 3)
        #expect(Set(run.emitted.map(\.offset)) == Set(0..<10).subtracting([3]))
        #expect(try await Self.outputs(cluster, output).sorted() == (0..<10).filter { $0 != 3 }.map { "v\($0)" })
        let dead = try await RawKafka.readAll(topic: dlq, bootstrapServers: cluster.bootstrapServers)
        #expect(dead.map(\.valueString) == ["v3"])
        let error = dead.first?.headers.first { $0.key == "parallel.error" }?.value
        #expect(error.map { String(decoding: $0, as: UTF8.self).contains(output) } == true)
    }

    @Test func aRefusedOutputFailsTheStreamUncommittedAndARestartProcessesOnlyWhatWasNotAcknowledged() async throws {
        let cluster = try TestCluster()
        let input = try cluster.createTopic("pp-fail-in", partitions: 1)
        let output = try cluster.createTopic("pp-fail-out", partitions: 1)
        let group = cluster.name("g-pp-fail")
        try await TestData.produce(
            bootstrapServers: cluster.bootstrapServers, topic: input,
            records: (0..<30).map { (key: "k\($0)", value: "\($0)") }, partition: 0)
        let parallel = ParallelSettings(
            ordering: .key, maxConcurrency: 4, retry: ParallelRetry(maxAttempts: 2, initialBackoff: .milliseconds(10)))
        let attempts = Atomic<Int>(0)
        let failing = Consumer.parallelSource(
            Self.consumer(cluster, group: group), subscription: .topics(input), parallel: parallel,
            producerSettings: Self.smallProducer(cluster)
        ) { record in
            if record.offset == 4 { attempts.add(1, ordering: .relaxed) }
            let value = record.offset == 4 ? String(repeating: "x", count: 2_000) : record.value
            return .single(ProducerRecord(topic: output, key: record.key, value: value), passThrough: Input(record))
        }
        await #expect { for try await _ in failing {} } throws: { ($0 as? KafkaError)?.kind == .deliveryFailed }
        await failing.materialized.shutdown()
        #expect(attempts.load(ordering: .relaxed) == 2)
        #expect(try await Self.committed(cluster, group: group, topic: input, partitions: 1) == [0: 4])
        let acknowledged = Set(try await Self.outputs(cluster, output).map { Int($0)! })
        #expect(!acknowledged.contains(4))
        #expect(acknowledged.isSuperset(of: 0..<4))

        // What was acknowledged above the failure is in the commit's metadata: only the rest runs again.
        let processed = Mutex<[Int]>([])
        let run = Running(
            Consumer.parallelSource(
                Self.consumer(cluster, group: group), subscription: .topics(input), parallel: parallel,
                producerSettings: Self.producer(cluster)
            ) { record in
                processed.withLock { $0.append(Int(record.offset)) }
                return .single(
                    ProducerRecord(topic: output, key: record.key, value: record.value), passThrough: Input(record))
            })
        #expect(
            try await StreamEndTests.eventually(within: .seconds(30)) {
                (try? TestData.committedOffsets(
                    bootstrapServers: cluster.bootstrapServers, group: group, topic: input, partitions: 1)) == [0: 30]
            })
        try await run.drain()
        #expect(Set(processed.withLock { $0 }) == Set(0..<30).subtracting(acknowledged))
        #expect(try await Self.outputs(cluster, output).map { Int($0)! }.sorted() == Array(0..<30))
    }

    @Test func drainCommitsWhatWasAcknowledgedAndARestartProducesOnlyTheRest() async throws {
        let cluster = try TestCluster()
        let input = try cluster.createTopic("pp-drain-in", partitions: 1)
        let output = try cluster.createTopic("pp-drain-out", partitions: 1)
        let group = cluster.name("g-pp-drain")
        try await TestData.produce(
            bootstrapServers: cluster.bootstrapServers, topic: input,
            records: (0..<40).map { (key: "k\($0)", value: "\($0)") }, partition: 0)
        let parallel = ParallelSettings(ordering: .key, maxConcurrency: 8, drainTimeout: .milliseconds(300))
        // First run: 7 and 23 never finish (stuck until cancelled by the drain's timeout).
        let first = Running(
            Consumer.parallelSource(
                Self.consumer(cluster, group: group), subscription: .topics(input), parallel: parallel,
                producerSettings: Self.producer(cluster)
            ) { record in
                if record.offset == 7 || record.offset == 23 { try await Task.sleep(for: .seconds(300)) }
                return .single(
                    ProducerRecord(topic: output, key: record.key, value: record.value), passThrough: Input(record))
            })
        #expect(try await first.waitFor(38))
        try await first.drain()
        #expect(try await Self.committed(cluster, group: group, topic: input, partitions: 1) == [0: 7])
        let expectedFirst = (0..<40).filter { $0 != 7 && $0 != 23 }
        #expect(try await Self.outputs(cluster, output).map { Int($0)! }.sorted() == expectedFirst)

        let processed = Mutex<[Int64]>([])
        let second = Running(
            Consumer.parallelSource(
                Self.consumer(cluster, group: group), subscription: .topics(input), parallel: parallel,
                producerSettings: Self.producer(cluster)
            ) { record in
                processed.withLock { $0.append(record.offset) }
                return .single(
                    ProducerRecord(topic: output, key: record.key, value: record.value), passThrough: Input(record))
            })
        #expect(try await second.waitFor(2))
        #expect(
            try await StreamEndTests.eventually(within: .seconds(30)) {
                (try? TestData.committedOffsets(
                    bootstrapServers: cluster.bootstrapServers, group: group, topic: input, partitions: 1)) == [0: 40]
            })
        try await second.drain()
        #expect(processed.withLock { $0 }.sorted() == [7, 23])
        #expect(try await Self.outputs(cluster, output).map { Int($0)! }.sorted() == Array(0..<40))
    }

    @Test func stoppedMidwayAndRestartedEveryInputIsWrittenOnce() async throws {
        let count = 2_000
        let cluster = try TestCluster()
        let input = try cluster.createTopic("pp-restart-in", partitions: 4)
        let output = try cluster.createTopic("pp-restart-out", partitions: 2)
        let group = cluster.name("g-pp-restart")
        try await TestData.produce(
            bootstrapServers: cluster.bootstrapServers, topic: input,
            records: (0..<count).map { (key: "k\($0 % 97)", value: "\($0)") }, roundRobinOver: 4)
        let parallel = ParallelSettings(ordering: .key, maxConcurrency: 100)
        func source() -> Source<Results, ConsumerControl> {
            Consumer.parallelSource(
                Self.consumer(cluster, group: group), subscription: .topics(input), parallel: parallel,
                producerSettings: Self.producer(cluster)
            ) { record in
                try await Task.sleep(for: .microseconds(Int.random(in: 0...3_000)))
                return .single(
                    ProducerRecord(topic: output, key: record.key, value: record.value), passThrough: Input(record))
            }
        }
        let first = Running(source())
        #expect(try await first.waitFor(count / 4))
        try await first.drain()
        let done = first.emitted.count
        #expect(done < count)

        let second = Running(source())
        #expect(try await second.waitFor(count - done, within: .seconds(120)))
        #expect(
            try await StreamEndTests.eventually(within: .seconds(30)) {
                (try? TestData.committedOffsets(
                    bootstrapServers: cluster.bootstrapServers, group: group, topic: input, partitions: 4))?.values
                    .reduce(0, +) == Int64(count)
            })
        try await second.drain()
        // The drain let running records finish and committed them: nothing processed twice.
        #expect(Set(first.emitted).isDisjoint(with: second.emitted))
        #expect(first.emitted.count + second.emitted.count == count)
        #expect(try await Self.outputs(cluster, output).map { Int($0)! }.sorted() == Array(0..<count))
    }

    @Test func theReadmeShowsTheExampleVerbatim() throws {
        try ReadmeBlocks.expectInReadme(markers: ["README parallel produce"])
    }

    @Test(.enabled(if: TestClusterMode.isEmbedded, "the README's topic names are fixed"))
    func theReadmeExampleWritesAQuotePerOrderInEachCustomersOrder() async throws {
        let cluster = try TestCluster()
        try cluster.createTopic("orders", partitions: 3)
        try cluster.createTopic("quotes", partitions: 2)
        try await TestData.produce(
            bootstrapServers: cluster.bootstrapServers, topic: "orders",
            records: (0..<60).map { (key: "customer-\($0 % 6)", value: "\($0)") })
        let consumerSettings = Self.consumer(cluster, group: "quoting")
        let producerSettings = Self.producer(cluster)
        @Sendable func quote(_ order: String) async throws -> String {
            try await Task.sleep(for: .microseconds(Int.random(in: 0...2_000)))
            return "quote for \(order)"
        }

        // README parallel produce: begin
        let quotes = Consumer.parallelSource(
            consumerSettings, subscription: .topics("orders"),
            parallel: ParallelSettings(ordering: .key, maxConcurrency: 1_000),
            producerSettings: producerSettings
        ) { record in
            let quote = try await quote(record.value) // one customer's quotes written in order
            return .single(ProducerRecord(topic: "quotes", key: record.key, value: quote), passThrough: record.offset)
        }
        let stream = Task { for try await _ in quotes {} }
        // README parallel produce: end

        #expect(
            try await StreamEndTests.eventually(within: .seconds(30)) {
                (try? TestData.committedOffsets(
                    bootstrapServers: cluster.bootstrapServers, group: "quoting", topic: "orders", partitions: 3))?
                    .values.reduce(0, +) == 60
            })
        try await quotes.materialized.drainAndShutdown(stream)
        let byCustomer = try await Self.ordersByCustomer(cluster, topic: "quotes", prefix: "quote for ")
        #expect(byCustomer.count == 6)
        #expect(Self.eachCustomersOrdersAreInOrder(byCustomer, orders: 60))
    }
}
