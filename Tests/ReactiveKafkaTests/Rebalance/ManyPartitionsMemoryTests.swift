import CRdKafka
import CSanitizerSupport
import Foundation
import ReactiveKafka
import ReactiveKafkaTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Memory is bounded by `maxBufferedBytes` whatever the partition count (fs2-kafka and
/// zio-kafka ran out of memory here): a slow consumer of a topic with 1,000 partitions and
/// 24 times its budget in data neither buffers more than its budget nor grows the process by
/// as much as the topic, and still reads every partition exactly once, in order. The same
/// holds when a `buffer` downstream would take 100,000 records (the whole topic) at once:
/// records it holds keep their fetched batches alive and count against the budget.
@Suite(.serialized) struct ManyPartitionsMemoryTests {
    static let partitions = 1000
    static let valueSize = 1024
    static let budget = 2 * 1024 * 1024

    enum SourceKind: String, CaseIterable, CustomTestStringConvertible {
        case plain, committable
        /// A plain source into `buffer(size: 100_000)` that nobody reads for 5 s.
        case downstreamBuffer
        var testDescription: String { rawValue }
        var recordsPerPartition: Int { self == .downstreamBuffer ? 100 : 50 }
    }

    /// In the child process that measures one kind alone: which kind, and the file its RSS growth is written to.
    static let childKindVariable = "REACTIVE_KAFKA_MEMORY_TEST_KIND"
    static let childReportVariable = "REACTIVE_KAFKA_MEMORY_TEST_REPORT"

    @Test(arguments: SourceKind.allCases)
    func aSlowConsumerOfAThousandPartitionsStaysWithinItsByteBudget(_ kind: SourceKind) async throws {
        let environment = ProcessInfo.processInfo.environment
        #if os(Linux)
            if let childKind = environment[Self.childKindVariable] {
                // The child: this kind alone, nothing else in the process.
                guard childKind == kind.rawValue else { return }
                let growth = try await Self.readAThousandPartitionsSlowly(kind)
                try String(growth).write(
                    toFile: try #require(environment[Self.childReportVariable]), atomically: true, encoding: .utf8)
                // This process exits right after this test. The consumer's handle is destroyed on a
                // thread of its own once its last batch is gone: wait for librdkafka to finish
                // destroying every client, or the exit cuts that short (ThreadSanitizer reports the
                // librdkafka threads that ended but were not joined yet as leaked).
                let destroyed = await Self.onOwnThread { rd_kafka_wait_destroyed(30_000) }
                #expect(destroyed == 0, "librdkafka's clients were not all destroyed within 30 s")
                return
            }
            // RSS is the whole process's, and other suites run beside this one in the test process
            // (they added up to +75 MiB in a full run), so RSS is measured in a child process of this
            // test bundle that runs this test alone. The child also checks everything else.
            let child = try await ChildTestRun.run(
                test: "ManyPartitionsMemoryTests/aSlowConsumerOfAThousandPartitionsStaysWithinItsByteBudget",
                environment: [Self.childKindVariable: kind.rawValue], reportVariable: Self.childReportVariable,
                timeout: .seconds(300))
            #expect(child.status == 0, "the child's own expectations failed:\n\(child.output.suffix(4000))")
            let growth = try #require(Int(child.report), "no RSS figure from the child:\n\(child.output.suffix(4000))")
            // The process must not take on the topic (~50 MB): librdkafka's prefetch is bounded too
            // (queued.max.messages.kbytes, derived from the budget, plus fetch responses). Measured
            // alone: +11 to +13 MiB; +65 to +75 MiB with a budget large enough to buffer the topic.
            let topicBytes = Self.partitions * kind.recordsPerPartition * Self.valueSize
            // Under the sanitizers RSS is mostly their own memory: ThreadSanitizer's shadow of every
            // byte touched, AddressSanitizer's quarantine of freed blocks (256 MB by default), so it
            // grows with the bytes read whatever the library holds (TSan: +40 MiB). There the child
            // checks the engine's byte budget and the order, not the process.
            if !Self.isSanitizerBuild {
                #expect(
                    growth < topicBytes / 2,
                    "RSS grew by \(growth >> 20) MiB while reading a \(topicBytes >> 20) MiB topic")
                if kind == .downstreamBuffer {
                    // Without counting what the buffer holds it took the whole topic (~100 MiB); the bound
                    // stated in the README is the budget plus librdkafka's fixed cost of 1,000 partitions.
                    #expect(
                        growth < 32 * 1024 * 1024,
                        "RSS grew by \(growth >> 20) MiB with a 100,000-record buffer downstream")
                }
            }
        #else
            // No /proc to read RSS from, nor a way to rerun this bundle alone: the engine's own bound only.
            _ = try await Self.readAThousandPartitionsSlowly(kind)
        #endif
    }

    /// A `make sanitize` build (CSanitizerSupport routes librdkafka's threads there only).
    static var isSanitizerBuild: Bool { rkafka_sanitizer_routed_threads() >= 0 }

    /// `body`'s result, computed on a thread of its own (it blocks: not on the cooperative pool).
    static func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: body()) }
            thread.name = "test-blocking"
            thread.start()
        }
    }

    /// Seeds a 1,000-partition topic with ~50 MB, reads it slowly with a `kind` source, checks
    /// the budget and the order, and returns how much the resident set grew while reading.
    static func readAThousandPartitionsSlowly(_ kind: SourceKind) async throws -> Int {
        let kafka = try EmbeddedKafka()
        let topic = "wide-\(kind)"
        let total = Self.partitions * kind.recordsPerPartition
        try kafka.createTopic(topic, partitions: Self.partitions)
        // ~50 MB, generated per record so that seeding leaves no topic-sized heap behind.
        let padding = String(repeating: "x", count: Self.valueSize)
        let producer = try BulkProducer(bootstrapServers: kafka.bootstrapServers)
        try producer.produce(topic: topic, indices: 0..<total, roundRobinOver: Int32(Self.partitions)) {
            "\($0):" + padding
        }
        producer.close()

        let settings = ConsumerSettings<KafkaBytes, KafkaBytes>(keyDeserializer: .bytes, valueDeserializer: .bytes)
            .withBootstrapServers(kafka.bootstrapServers)
            .withGroupId("g-\(topic)")
            .withProperty("auto.offset.reset", "earliest")
            .withProperties(EmbeddedKafka.fastGroupProperties)
            .withMaxBufferedBytes(Self.budget)
        let rssBefore = ResidentMemory.afterReturningFreePages()
        let read: ReadOutcome
        let metrics: ConsumerMetrics
        switch kind {
        case .plain:
            let source = Consumer.plainSource(settings, subscription: .topics(topic))
            read = try await Self.readSlowly(source, total: total, rssBefore: rssBefore) { $0 }
            metrics = source.materialized.metrics
            await source.materialized.shutdown()
        case .committable:
            let source = Consumer.committableSource(settings, subscription: .topics(topic))
            read = try await Self.readSlowly(source, total: total, rssBefore: rssBefore) { $0.record }
            metrics = source.materialized.metrics
            await source.materialized.shutdown()
        case .downstreamBuffer:
            let source = Consumer.plainSource(settings, subscription: .topics(topic))
            let buffered = source.buffer(size: 100_000, overflow: .backpressure)
            read = try await Self.readSlowly(buffered, total: total, rssBefore: rssBefore, holdFirst: .seconds(5)) {
                $0
            }
            metrics = source.materialized.metrics
            await source.materialized.shutdown()
        }

        #expect(read.count == total)
        #expect(
            read.outOfOrder.isEmpty,
            "every partition is read once, in order from offset 0; first departures: \(read.outOfOrder)")
        #expect(read.nextOffsets.allSatisfy { $0 == Int64(kind.recordsPerPartition) })
        #expect(read.valueBytes > 20 * Self.budget)
        #expect(metrics.bufferedBytesHighWater > 0)
        #expect(
            metrics.bufferedBytesHighWater <= Self.budget,
            "buffered \(metrics.bufferedBytesHighWater) bytes, budget \(Self.budget)")
        let growth = read.rssPeak - rssBefore
        print(
            "ManyPartitionsMemoryTests(\(kind)): \(read.count) records, \(read.valueBytes >> 20) MiB in \(read.elapsed); buffered high water \(metrics.bufferedBytesHighWater) B of \(Self.budget); RSS +\(growth >> 20) MiB"
        )
        #if os(Linux)
            #expect(rssBefore > 0, "no resident set size to measure (/proc/self/statm)")
        #endif
        return growth
    }

    struct ReadOutcome {
        var count = 0
        var valueBytes = 0
        var nextOffsets = [Int64](repeating: 0, count: ManyPartitionsMemoryTests.partitions)
        /// The first records that were not the next offset of their partition: "partition: expected → got".
        var outOfOrder: [String] = []
        var rssPeak = 0
        /// From the first record to the last.
        var elapsed: Duration = .zero
    }

    /// Reads `total` records: for the first 3 s after the first record a slow consumer
    /// (suspending 10 ms every 50 records, ~5,000 records/s, while the fetcher could pull the
    /// whole topic many times over if nothing held it back), then as fast as it can. With
    /// `holdFirst`, nothing more is read for that long after the first record (what runs
    /// upstream, a buffer, fills meanwhile as far as it may), and the RSS is taken then.
    static func readSlowly<S: AsyncSequence>(
        _ source: S, total: Int, rssBefore: Int, holdFirst: Duration? = nil,
        record: (S.Element) -> ConsumerRecord<KafkaBytes, KafkaBytes>
    ) async throws -> ReadOutcome {
        var outcome = ReadOutcome(rssPeak: rssBefore)
        var slowUntil: ContinuousClock.Instant?
        var first: ContinuousClock.Instant?
        for try await element in source {
            if first == nil {
                first = .now
                if let holdFirst {
                    try await Task.sleep(for: holdFirst)
                    outcome.rssPeak = max(outcome.rssPeak, ResidentMemory.current())
                }
            }
            let r = record(element)
            let p = Int(r.partition)
            if r.offset != outcome.nextOffsets[p], outcome.outOfOrder.count < 5 {
                outcome.outOfOrder.append("\(p): \(outcome.nextOffsets[p]) → \(r.offset)")
            }
            outcome.nextOffsets[p] = r.offset + 1
            outcome.count += 1
            outcome.valueBytes += r.value.count
            if outcome.count % 50 == 0 {
                outcome.rssPeak = max(outcome.rssPeak, ResidentMemory.current())
                let now = ContinuousClock.now
                if slowUntil == nil { slowUntil = now + .seconds(3) }
                if let slowUntil, now < slowUntil { try await Task.sleep(for: .milliseconds(10)) }
            }
            if outcome.count == total { break }
        }
        outcome.elapsed = first.map { .now - $0 } ?? .zero
        return outcome
    }
}

/// The process's resident set, from /proc/self/statm.
enum ResidentMemory {
    /// Resident bytes now (0 where /proc is unavailable).
    static func current() -> Int {
        guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = statm.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// Resident bytes after returning the allocator's free pages to the kernel, so that memory
    /// freed earlier (e.g. while seeding) cannot absorb, and hide, growth measured from here.
    static func afterReturningFreePages() -> Int {
        #if canImport(Glibc)
            // glibc's malloc_trim (the Glibc module does not export it) also releases free pages inside arenas.
            typealias MallocTrim = @convention(c) (Int) -> Int32
            if let symbol = dlsym(nil, "malloc_trim") {
                _ = unsafeBitCast(symbol, to: MallocTrim.self)(0)
            }
        #endif
        return current()
    }
}
