// swift-format-ignore-file: AlwaysUseLowerCamelCase

// (snake_case properties are the JSON field names the bench prints.)
import Foundation
import Logging
import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Synchronization

/// `rkafka bench --scenario rebalance`: what a member joining a group costs, per assignment
/// strategy (eager `range` and `roundrobin`, `cooperative-sticky`).
///
/// Records are produced at a steady rate. Member A (`committableSource → Committer.sink`, the
/// at-least-once pipeline) consumes alone for 2 s, then member B joins the group. Measured
/// from B's start: the longest pause in the group's record flow (A and B together) and when
/// it ended (records flowing again), and when B's first record arrived. Then production stops,
/// both drain and shut down, and every record is checked: duplicates are records delivered
/// more than once, lost ones were never delivered. The group uses
/// `EmbeddedKafka.fastGroupProperties`; the embedded cluster's coordinator waits its own
/// rebalance delays (~3 s for a first join, session timeout − 1 s for later ones), which
/// dominate the times.
enum RebalanceBench {
    static let name = "rebalance"
    /// Records produced per second while the members run.
    static let rate = 20_000
    /// How long A runs alone before B joins, and how long both run after B's first record.
    static let settle: Duration = .seconds(2)
    static let strategies = ["range", "roundrobin", "cooperative-sticky"]

    /// Runs the scenario once per strategy, each on a fresh cluster (or the given one), and
    /// prints one line each. A strategy that fails is reported and the others still run; the
    /// scenario then fails naming them.
    static func run(cluster: ClusterOptions, partitions: Int, size: Int, json: Bool) async throws {
        var failed: [String] = []
        for strategy in strategies {
            if !json { printError("… \(name): \(strategy)") }
            do {
                let connection = try cluster.connect()
                defer { connection.close() }
                let result = try await measure(
                    strategy: strategy, connection: connection, partitions: partitions, size: size)
                print(json ? result.jsonLine() : result.humanLine())
                fflush(nil) // all output streams: stdout is a C global Swift 6 will not touch
            } catch {
                printError("rkafka bench: \(name) \(strategy) failed: \(error)")
                failed.append(strategy)
            }
        }
        if !failed.isEmpty { throw BenchError("\(name) failed for \(failed.joined(separator: ", "))") }
    }

    static func measure(strategy: String, connection: ClusterConnection, partitions: Int, size: Int) async throws
        -> RebalanceBenchLine
    {
        let run = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let topic = "bench-rebalance-\(strategy)-\(run)"
        if try !connection.createTopic(topic, partitions: partitions) {
            printError(
                "rkafka bench: the cluster cannot create topics; \(topic) is auto-created with its default partition count, not \(partitions)"
            )
        }
        let recorder = RebalanceRecorder(partitions: partitions)
        let producer = SteadyProducer(
            bootstrapServers: connection.bootstrapServers, topic: topic, partitions: partitions, size: size, rate: rate)
        let producing = Task { try await producer.run() }
        let settings = ConsumerSettings<KafkaBytes, KafkaBytes>(keyDeserializer: .bytes, valueDeserializer: .bytes)
            .withBootstrapServers(connection.bootstrapServers)
            .withGroupId("bench-rebalance-\(strategy)-\(run)")
            .withProperty("auto.offset.reset", "earliest")
            .withProperties(EmbeddedKafka.fastGroupProperties)
            .withProperty("partition.assignment.strategy", strategy)
        func member(_ index: Int) -> DrainingControl<Void> {
            Consumer.committableSource(
                settings, subscription: .topics(topic),
                logger: Logger(label: "rkafka.bench.rebalance.\(index == 0 ? "A" : "B")")
            )
            .map { message in
                recorder.record(member: index, partition: message.record.partition, offset: message.record.offset)
                return message.committableOffset
            }
            .to(Committer.sink(CommitterSettings()))
            .start()
        }

        let a = member(0)
        var b: DrainingControl<Void>?
        do {
            try await recorder.wait(for: "member A's first record", timeout: .seconds(60)) { $0.firstRecord[0] != nil }
            try await Task.sleep(for: settle)
            let joined = ContinuousClock.now
            recorder.markJoin(at: joined, window: settle)
            let memberB = member(1)
            b = memberB
            try await recorder.wait(for: "member B's first record", timeout: .seconds(60)) { $0.firstRecord[1] != nil }
            try await recorder.wait(for: "the measuring window", timeout: .seconds(60)) { $0.windowClosed }
            producer.stop()
            let produced = try await producing.value
            do {
                try await recorder.wait(for: "all \(produced) records", timeout: .seconds(60)) {
                    $0.distinct >= produced
                }
            } catch {
                throw BenchError("\(error); behind: \(recorder.snapshot.behind(produced: produced))")
            }
            async let drainA: Void = a.drainAndShutdown()
            async let drainB: Void = memberB.drainAndShutdown()
            _ = try await (drainA, drainB)
            let s = recorder.snapshot
            let firstB = s.firstRecord[1]!
            return RebalanceBenchLine(
                scenario: name, assignment: strategy, partitions: partitions, produced: produced,
                delivered: s.total, duplicates: s.total - s.distinct, lost: produced - s.distinct,
                new_member_first_record_ms: (firstB - joined).milliseconds,
                longest_pause_ms: s.longestPause.milliseconds,
                flowing_again_ms: ((s.longestPauseEnd ?? joined) - joined).milliseconds,
                records_by_member: s.perMember,
                notes: "\(rate) msgs/s of \(size) B; committableSource → Committer.sink; fastGroupProperties")
        } catch {
            producer.stop()
            _ = try? await producing.value
            await a.shutdown()
            await b?.shutdown()
            throw error
        }
    }
}

/// One strategy's result: one JSON object a line with `--json`.
struct RebalanceBenchLine: Codable, Sendable {
    var scenario: String
    /// librdkafka's `partition.assignment.strategy`.
    var assignment: String
    var partitions: Int
    var produced: Int
    /// Records delivered to the two members, duplicates included.
    var delivered: Int
    /// Records delivered more than once.
    var duplicates: Int
    /// Records never delivered (must be 0).
    var lost: Int
    /// From B's start to B's first record.
    var new_member_first_record_ms: Int64
    /// The longest time without any record delivered to the group, after B's start.
    var longest_pause_ms: Int64
    /// From B's start to the end of that pause: records flowing again.
    var flowing_again_ms: Int64
    var records_by_member: [Int]
    var notes: String

    func jsonLine() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try! encoder.encode(self), as: UTF8.self)
    }

    func humanLine() -> String {
        String(
            format:
                "%-30@ longest pause %6lld ms   flowing again after %6lld ms   new member's first record after %6lld ms   duplicates %d   lost %d   (%d records)",
            "\(scenario) \(assignment)" as NSString, longest_pause_ms, flowing_again_ms, new_member_first_record_ms,
            duplicates, lost, produced)
    }
}

/// What the two members received, and the group's flow of records around the join.
final class RebalanceRecorder: Sendable {
    struct Snapshot: Sendable {
        var seen: [[UInt8]]
        var distinct = 0
        var total = 0
        var perMember = [0, 0]
        var firstRecord: [ContinuousClock.Instant?] = [nil, nil]
        var lastRecord: ContinuousClock.Instant?
        var joined: ContinuousClock.Instant?
        /// How long after B's first record the pause is still measured.
        var window: Duration = .zero
        var windowClosed = false
        var longestPause: Duration = .zero
        var longestPauseEnd: ContinuousClock.Instant?
        /// The member that last received a record of each partition.
        var lastMember: [Int]

        /// Partitions not read to the end (round-robin production of `produced` records), as
        /// "partition: read/end (last member)".
        func behind(produced: Int) -> [String] {
            let count = seen.count
            return (0..<count).compactMap { p in
                let end = (produced - p + count - 1) / count
                let read = seen[p].prefix(end).filter { $0 > 0 }.count
                return read < end
                    ? "\(p): \(read)/\(end) (\(lastMember[p] < 0 ? "none" : lastMember[p] == 0 ? "A" : "B"))" : nil
            }
        }
    }

    private let state: WatchedSnapshot<Snapshot>

    init(partitions: Int) {
        state = WatchedSnapshot(
            Snapshot(seen: Array(repeating: [], count: partitions), lastMember: Array(repeating: -1, count: partitions))
        )
    }

    var snapshot: Snapshot { state.snapshot }

    func markJoin(at instant: ContinuousClock.Instant, window: Duration) {
        state.update {
            $0.joined = instant
            $0.window = window
        }
    }

    func record(member: Int, partition: Int32, offset: Int64) {
        let now = ContinuousClock.now
        state.update { s in
            let p = Int(partition)
            let o = Int(offset)
            if s.seen[p].count <= o {
                s.seen[p].append(contentsOf: repeatElement(0, count: o + 1 - s.seen[p].count))
            }
            if s.seen[p][o] == 0 { s.distinct += 1 }
            s.seen[p][o] &+= 1
            s.total += 1
            s.perMember[member] += 1
            s.lastMember[p] = member
            if s.firstRecord[member] == nil { s.firstRecord[member] = now }
            if let joined = s.joined, !s.windowClosed {
                let pause = now - max(s.lastRecord ?? joined, joined)
                if pause > s.longestPause {
                    s.longestPause = pause
                    s.longestPauseEnd = now
                }
                if let firstB = s.firstRecord[1], now - firstB >= s.window { s.windowClosed = true }
            }
            s.lastRecord = now
        }
    }

    /// Suspends until `condition` holds; throws a ``BenchError`` naming `what` after `timeout`.
    func wait(for what: String, timeout: Duration, until condition: @escaping @Sendable (Snapshot) -> Bool) async throws
    {
        if await !state.wait(timeout: timeout, until: condition) {
            let s = snapshot
            throw BenchError(
                "\(RebalanceBench.name): no \(what) within \(timeout) (\(s.distinct) distinct records, per member \(s.perMember))"
            )
        }
    }
}

/// Produces values of `size` bytes round-robin over the partitions at `rate` records a second
/// on a thread of its own, until stopped; returns how many it produced (all acknowledged).
final class SteadyProducer: Sendable {
    private let bootstrapServers: String
    private let topic: String
    private let partitions: Int
    private let size: Int
    private let rate: Int
    private let stopped = Atomic<Bool>(false)

    init(bootstrapServers: String, topic: String, partitions: Int, size: Int, rate: Int) {
        self.bootstrapServers = bootstrapServers
        self.topic = topic
        self.partitions = partitions
        self.size = size
        self.rate = rate
    }

    func stop() { stopped.store(true, ordering: .releasing) }

    func run() async throws -> Int {
        try await onDedicatedThread("rkafka-bench-rebalance-producer") { [self] in
            let producer = try BulkProducer(bootstrapServers: bootstrapServers)
            defer { producer.close() }
            let value = String(repeating: "x", count: size)
            // 50 chunks a second, each due at its time on the clock (a late chunk does not delay the next).
            let chunk = max(1, rate / 50)
            let start = ContinuousClock.now
            var produced = 0
            var tick = 0
            while !stopped.load(ordering: .acquiring) {
                let due = start + .milliseconds(20 * tick)
                let wait = due - .now
                if wait > .zero {
                    Thread.sleep(
                        forTimeInterval: Double(wait.components.attoseconds) / 1e18 + Double(wait.components.seconds))
                }
                try producer.produce(
                    topic: topic, indices: produced..<(produced + chunk), roundRobinOver: Int32(partitions)
                ) { _ in value }
                produced += chunk
                tick += 1
            }
            return produced
        }
    }
}

extension Duration {
    fileprivate var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
