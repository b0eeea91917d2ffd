import Foundation
import ReactiveKafkaTestKit
import StreamKit
import Synchronization
import Testing

@testable import ReactiveKafka

/// The exactly-once parallel source (``Transactional/parallelSource``), on the embedded cluster
/// or a Kafka broker (`KAFKA_BOOTSTRAP_SERVERS=host:port make test-external`): outputs in
/// transactions that read_committed readers see once, with the input offsets; a restart after an
/// aborted transaction processes exactly what no committed transaction holds (broker only: the
/// mock neither stores transactional offsets nor hides aborted records).
@Suite(.serialized) struct ParallelTransactionalTests {
    typealias Input = ParallelProduceTests.Input
    typealias Running = ParallelProduceTests.Running

    /// The inputs a handler was called with.
    final class Handled: Sendable { let list = Mutex<[Input]>([]) }

    static func producer(_ cluster: TestCluster) -> ProducerSettings<String, String> {
        ParallelProduceTests.producer(cluster).withProperty("transaction.timeout.ms", "10000")
    }

    @Test func everyInputsOutputsAreCommittedOnceWithItsOffsetAndSeenByReadCommittedReaders() async throws {
        let cluster = try TestCluster()
        let input = try cluster.createTopic("ptx-exact-in", partitions: 3)
        let output = try cluster.createTopic("ptx-exact-out", partitions: 2)
        let group = cluster.name("g-ptx-exact")
        try await TestData.produce(
            bootstrapServers: cluster.bootstrapServers, topic: input,
            records: (0..<300).map { (key: "k\($0 % 20)", value: "\($0)") }, roundRobinOver: 3)
        let handled = Mutex<[Input]>([])
        let run = Running(
            Transactional.parallelSource(
                ParallelProduceTests.consumer(cluster, group: group), subscription: .topics(input),
                parallel: ParallelSettings(ordering: .key, maxConcurrency: 50),
                producerSettings: Self.producer(cluster),
                transactionalId: cluster.name("ptx-exact"), eosCommitInterval: .milliseconds(50)
            ) { record in
                handled.withLock { $0.append(Input(record)) }
                // Some latency, so that the 300 records span several transactions.
                try await Task.sleep(for: .microseconds(Int.random(in: 0...3_000)))
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
        #expect(handled.withLock { $0.count } == 300, "no record was withdrawn or processed twice")
        var expected: [String] = []
        for n in 0..<300 where n % 3 != 0 { expected += n % 3 == 1 ? ["\(n)"] : ["\(n)a", "\(n)b"] }
        let committedOutputs = try await TopicReader.allValues(
            topic: output, partitions: 2, bootstrapServers: cluster.bootstrapServers, isolation: .readCommitted)
        #expect(committedOutputs.sorted() == expected.sorted())
        if cluster.isExternal {
            // The mock cluster does not store offsets sent to a transaction.
            #expect(
                try await ParallelProduceTests.committed(cluster, group: group, topic: input, partitions: 3)
                    == [0: 100, 1: 100, 2: 100])
        }
    }

    @Test func aSecondRunWithTheSameTransactionalIdAfterADrainProcessesNothingAgain() async throws {
        let cluster = try TestCluster()
        let input = try cluster.createTopic("ptx-again-in", partitions: 2)
        let output = try cluster.createTopic("ptx-again-out", partitions: 1)
        let group = cluster.name("g-ptx-again")
        let id = cluster.name("ptx-again")
        try await TestData.produce(
            bootstrapServers: cluster.bootstrapServers, topic: input,
            records: (0..<40).map { (key: "k\($0)", value: "\($0)") }, roundRobinOver: 2)
        func source(_ handled: Handled) -> Source<ParallelProduceTests.Results, ConsumerControl> {
            Transactional.parallelSource(
                ParallelProduceTests.consumer(cluster, group: group), subscription: .topics(input),
                parallel: ParallelSettings(ordering: .unordered, maxConcurrency: 8),
                producerSettings: Self.producer(cluster), transactionalId: id, eosCommitInterval: .milliseconds(50)
            ) { record in
                handled.list.withLock { $0.append(Input(record)) }
                return .single(
                    ProducerRecord(topic: output, key: record.key, value: record.value), passThrough: Input(record))
            }
        }
        let first = Handled()
        let run = Running(source(first))
        #expect(try await run.waitFor(40))
        try await run.drain()
        // More input, then a second run: it starts where the first run's last transaction left off.
        try await TestData.produce(
            bootstrapServers: cluster.bootstrapServers, topic: input,
            records: (40..<50).map { (key: "k\($0)", value: "\($0)") }, roundRobinOver: 2)
        let second = Handled()
        let again = Running(source(second))
        // The mock cluster does not store offsets sent to a transaction: there, it reads everything again.
        #expect(try await again.waitFor(cluster.isExternal ? 10 : 50))
        try await again.drain()
        if cluster.isExternal {
            #expect(second.list.withLock { $0.count } == 10, "only the new records are processed")
        }
        let values = try await TopicReader.allValues(
            topic: output, partitions: 1, bootstrapServers: cluster.bootstrapServers, isolation: .readCommitted)
        if cluster.isExternal {
            #expect(values.sorted() == (0..<50).map { "\($0)" }.sorted())
        } else {
            #expect(Set(values) == Set((0..<50).map { "\($0)" }))
        }
    }

    @Test func anOutputRefusedByTheProducerFailsTheStreamWithItsError() async throws {
        let cluster = try TestCluster()
        let input = try cluster.createTopic("ptx-refused-in", partitions: 1)
        let output = try cluster.createTopic("ptx-refused-out", partitions: 1)
        try await TestData.produce(
            bootstrapServers: cluster.bootstrapServers, topic: input,
            records: (0..<10).map { (key: "k\($0)", value: "\($0)") }, partition: 0)
        let handled = Handled()
        let run = Running(
            Transactional.parallelSource(
                ParallelProduceTests.consumer(cluster, group: cluster.name("g-ptx-refused")),
                subscription: .topics(input),
                producerSettings: Self.producer(cluster).withProperty("message.max.bytes", "1000"),
                transactionalId: cluster.name("ptx-refused")
            ) { record in
                handled.list.withLock { $0.append(Input(record)) }
                let value = record.offset == 3 ? String(repeating: "x", count: 5_000) : record.value
                return .single(ProducerRecord(topic: output, key: record.key, value: value), passThrough: Input(record))
            })
        let error = await #expect(throws: KafkaError.self) { try await run.task.value }
        #expect(error?.kind == .deliveryFailed)
        // Not retried: its transaction aborts, and it is processed again when the stream restarts.
        #expect(handled.list.withLock { $0.filter { $0.offset == 3 }.count } == 1)
    }

    @Test func theReadmeShowsTheExampleVerbatim() throws {
        try ReadmeBlocks.expectInReadme(markers: ["README parallel exactly-once"])
    }

    @Test(.enabled(if: TestClusterMode.isEmbedded, "the README's topic names are fixed"))
    func theReadmeExampleWritesAnInvoicePerOrderOnceInEachCustomersOrder() async throws {
        let cluster = try TestCluster()
        try cluster.createTopic("orders", partitions: 3)
        try cluster.createTopic("invoices", partitions: 2)
        try await TestData.produce(
            bootstrapServers: cluster.bootstrapServers, topic: "orders",
            records: (0..<60).map { (key: "customer-\($0 % 6)", value: "\($0)") })
        let consumerSettings = ParallelProduceTests.consumer(cluster, group: "invoicing")
        let producerSettings = Self.producer(cluster)
        @Sendable func invoice(_ order: String) async throws -> String {
            try await Task.sleep(for: .microseconds(Int.random(in: 0...2_000)))
            return "invoice for \(order)"
        }

        // README parallel exactly-once: begin
        let invoices = Transactional.parallelSource(
            consumerSettings, subscription: .topics("orders"),
            parallel: ParallelSettings(ordering: .key, maxConcurrency: 1_000),
            producerSettings: producerSettings, transactionalId: "invoicing-1"
        ) { record in
            let invoice = try await invoice(record.value) // written once, with the order's offset
            return .single(
                ProducerRecord(topic: "invoices", key: record.key, value: invoice), passThrough: record.offset)
        }
        let stream = Task { for try await _ in invoices {} }
        // README parallel exactly-once: end

        let written = Mutex<[String]>([])
        _ = try await Eventually.within(.seconds(30)) {
            let values = try await TopicReader.allValues(
                topic: "invoices", partitions: 2, bootstrapServers: cluster.bootstrapServers, isolation: .readCommitted)
            written.withLock { $0 = values }
            return values.count >= 60
        }
        try await invoices.materialized.drainAndShutdown(stream)
        #expect(written.withLock { $0 }.sorted() == (0..<60).map { "invoice for \($0)" }.sorted())
        let byCustomer = try await ParallelProduceTests.ordersByCustomer(
            cluster, topic: "invoices", prefix: "invoice for ")
        #expect(ParallelProduceTests.eachCustomersOrdersAreInOrder(byCustomer, orders: 60))
    }
}

/// The exactly-once parallel source against a Kafka broker: a crash after transactions with
/// a gap and an aborted one, and a rebalance, each leaving every input's output once.
@Suite(
    .serialized,
    .enabled(
        if: TestClusterMode.isExternal,
        "the mock cluster neither stores transactional offsets nor hides aborted records: needs KAFKA_BOOTSTRAP_SERVERS"
    ))
struct ParallelTransactionalBrokerTests {
    /// Opens once; waiters before and after go on.
    final class Latch: Sendable {
        private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))
        func open() {
            for waiter in state.withLock({ s in
                s.open = true
                defer { s.waiters.removeAll() }
                return s.waiters
            }) { waiter.resume() }
        }
        func wait() async {
            await withCheckedContinuation { c in
                let now = state.withLock { s in
                    if s.open { return true }
                    s.waiters.append(c)
                    return false
                }
                if now { c.resume() }
            }
        }
    }

    /// Whether the group's committed offsets of `topic` become `expected` within `limit`.
    static func committedReaches(
        _ expected: [Int32: Int64], _ cluster: TestCluster, group: String, topic: String, within limit: Duration
    ) async -> Bool {
        let reached = try? await Eventually.within(limit) {
            let committed = try? await ParallelProduceTests.committed(
                cluster, group: group, topic: topic, partitions: Int32(expected.count))
            return committed == expected
        }
        return reached ?? false
    }

    @Test(arguments: ["range", "cooperative-sticky"])
    func aMemberJoiningMidStreamTakesPartitionsWithoutAnyOutputWrittenTwice(assignor: String) async throws {
        let cluster = try TestCluster()
        let input = try cluster.createTopic("ptx-join-\(assignor)-in", partitions: 4)
        let output = try cluster.createTopic("ptx-join-\(assignor)-out", partitions: 2)
        let group = cluster.name("g-ptx-join-\(assignor)")
        try await TestData.produce(
            bootstrapServers: cluster.bootstrapServers, topic: input,
            records: (0..<400).map { (key: "k\($0 % 40)", value: "\($0)") }, roundRobinOver: 4)
        // The first member holds its records after its 60th until the second member emitted:
        // the join revokes partitions with records running (and waiting past `drainTimeout`).
        let hold = Latch()
        let started = Atomic<Int>(0)
        func member(_ id: String, holding: Bool) -> ParallelProduceTests.Running {
            ParallelProduceTests.Running(
                Transactional.parallelSource(
                    ParallelProduceTests.consumer(cluster, group: group)
                        .withProperty("partition.assignment.strategy", assignor),
                    subscription: .topics(input),
                    parallel: ParallelSettings(ordering: .key, maxConcurrency: 20, drainTimeout: .seconds(2)),
                    producerSettings: ParallelTransactionalTests.producer(cluster),
                    transactionalId: cluster.name("\(id)-\(assignor)"),
                    eosCommitInterval: .milliseconds(100)
                ) { record in
                    if holding, started.add(1, ordering: .relaxed).newValue > 60 { await hold.wait() }
                    try await Task.sleep(for: .milliseconds(Int.random(in: 1...5)))
                    return .single(
                        ProducerRecord(topic: output, key: record.key, value: record.value),
                        passThrough: ParallelProduceTests.Input(record))
                })
        }
        let first = member("ptx-join-a", holding: true)
        #expect(try await first.waitFor(60))
        let second = member("ptx-join-b", holding: false)
        #expect(try await second.waitFor(1))
        hold.open()
        #expect(
            await Self.committedReaches(
                [0: 100, 1: 100, 2: 100, 3: 100], cluster, group: group, topic: input, within: .seconds(90)))
        try await first.drain()
        try await second.drain()
        let values = try await TopicReader.allValues(
            topic: output, partitions: 2, bootstrapServers: cluster.bootstrapServers, isolation: .readCommitted)
        #expect(values.sorted() == (0..<400).map { "\($0)" }.sorted(), "every input's output once")
    }

    @Test func aSecondInstanceWithTheSameTransactionalIdFencesTheFirst() async throws {
        let cluster = try TestCluster()
        let input = try cluster.createTopic("ptx-fence-in", partitions: 1)
        let output = try cluster.createTopic("ptx-fence-out", partitions: 1)
        try await TestData.produce(
            bootstrapServers: cluster.bootstrapServers, topic: input,
            records: (0..<2_000).map { (key: "k\($0)", value: "\($0)") }, partition: 0)
        let id = cluster.name("ptx-fence")
        // Two groups, so that both instances read the partition; one transactional id.
        func instance(_ group: String) -> ParallelProduceTests.Running {
            ParallelProduceTests.Running(
                Transactional.parallelSource(
                    ParallelProduceTests.consumer(cluster, group: cluster.name(group)), subscription: .topics(input),
                    parallel: ParallelSettings(maxConcurrency: 4),
                    producerSettings: ParallelTransactionalTests.producer(cluster),
                    transactionalId: id, eosCommitInterval: .milliseconds(50)
                ) { record in
                    try await Task.sleep(for: .milliseconds(5))
                    return .single(
                        ProducerRecord(topic: output, key: record.key, value: record.value),
                        passThrough: ParallelProduceTests.Input(record))
                })
        }
        let first = instance("g-ptx-fence-a")
        #expect(try await first.waitFor(20))
        let second = instance("g-ptx-fence-b")
        let error = await #expect(throws: KafkaError.self) { try await first.task.value }
        #expect(error?.kind == .fenced, "\(String(describing: error))")
        #expect(try await second.waitFor(20))
        second.task.cancel()
        _ = try? await second.task.value
    }

    @Test func aRestartAfterAnAbortedTransactionProcessesTheGapAndTheAbortedRecordsOnly() async throws {
        let cluster = try TestCluster()
        let input = try cluster.createTopic("ptx-crash-in", partitions: 1)
        let output = try cluster.createTopic("ptx-crash-out", partitions: 1)
        let group = cluster.name("g-ptx-crash")
        let id = cluster.name("ptx-crash")
        try await TestData.produce(
            bootstrapServers: cluster.bootstrapServers, topic: input,
            records: (0..<60).map { (key: "k\($0)", value: "\($0)") }, partition: 0)
        let producer = ParallelTransactionalTests.producer(cluster).withProperty("message.max.bytes", "1000")
        let out = { @Sendable (record: ConsumerRecord<String, String>, value: String) in
            ProducerRecord(topic: output, key: record.key, value: value)
        }
        // First run: offset 10 never completes (a gap); 50… wait for `late`, then 55's output is
        // too large: refused, its transaction aborts and the stream fails.
        let late = Latch()
        let firstRun = ParallelProduceTests.Running(
            Transactional.parallelSource(
                ParallelProduceTests.consumer(cluster, group: group), subscription: .topics(input),
                parallel: ParallelSettings(ordering: .unordered, maxConcurrency: 20), producerSettings: producer,
                transactionalId: id, eosCommitInterval: .milliseconds(100)
            ) { record in
                if record.offset == 10 { try await Task.sleep(for: .seconds(3600)) }
                if record.offset >= 50 { await late.wait() }
                let value = record.offset == 55 ? String(repeating: "x", count: 5_000) : record.value
                return .single(out(record, value), passThrough: ParallelProduceTests.Input(record))
            })
        #expect(try await firstRun.waitFor(49))
        // A transaction committed offset 10 with 11…49 done in its metadata.
        #expect(await Self.committedReaches([0: 10], cluster, group: group, topic: input, within: .seconds(30)))
        late.open()
        await #expect(throws: (any Error).self) { try await firstRun.task.value }

        // Second run: the gap and whatever of 50… no transaction committed.
        let handled = Mutex<Set<Int64>>([])
        let secondRun = ParallelProduceTests.Running(
            Transactional.parallelSource(
                ParallelProduceTests.consumer(cluster, group: group), subscription: .topics(input),
                parallel: ParallelSettings(ordering: .unordered, maxConcurrency: 20),
                producerSettings: ParallelTransactionalTests.producer(cluster), transactionalId: id,
                eosCommitInterval: .milliseconds(100)
            ) { record in
                handled.withLock { _ = $0.insert(record.offset) }
                return .single(out(record, record.value), passThrough: ParallelProduceTests.Input(record))
            })
        #expect(await Self.committedReaches([0: 60], cluster, group: group, topic: input, within: .seconds(60)))
        try await secondRun.drain()
        let processed = handled.withLock { $0 }
        #expect(processed.contains(10))
        #expect(processed.contains(55))
        #expect(processed.isSubset(of: Set([10] + Array(50..<60))), "records committed above the gap are not redone")
        let values = try await TopicReader.allValues(
            topic: output, partitions: 1, bootstrapServers: cluster.bootstrapServers, isolation: .readCommitted)
        #expect(values.sorted() == (0..<60).map { "\($0)" }.sorted(), "every input's output once")
    }
}
