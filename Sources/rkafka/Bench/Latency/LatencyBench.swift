import Foundation
import ReactiveKafka

/// `rkafka bench --scenario latency`: end-to-end latency of the at-least-once pipeline
/// (`committableSource → flexiFlow → Committer.sink`) at a fixed offered rate and at 50% of its
/// measured maximum, next to a raw librdkafka relay loop (consume → produce → commit after
/// delivery, same properties) at the same rates, once per `linger.ms` of their producers.
///
/// Per `linger.ms`, on a fresh cluster: an unpaced run measures each pipeline's maximum
/// throughput, then each is measured at `--rate` and at half the connector's maximum, connector
/// and raw relay one after the other. Every point has fresh input and output topics, its own load
/// generator and reader, and a pipeline assigned every input partition (no group join). A point
/// is a 0.5 s warm-up and `--point-seconds` of measured records, each record's latency running
/// from the load generator's produce call to the reader's consumption of its relayed copy (see
/// ``LoadGenerator`` and ``LatencyReader``: both add the same to either side).
///
/// The embedded cluster (librdkafka's mock) holds a fetch that finds nothing for the whole
/// `fetch.wait.max.ms` even when records arrive meanwhile, so every consumer here asks for 1 ms
/// (``LatencyPlan/consumerProperties``); and it finds a fetch's offset by walking the partition's
/// batches from the oldest, so it slows down with every batch a topic holds: hence fresh topics
/// per point, a load generator that batches (``LoadGenerator``) and fewer partitions
/// (``defaultPartitions``).
enum LatencyBench {
    static let name = "latency"
    /// Partitions of the scenario's topics without `--partitions`: with the 64 of the throughput
    /// scenarios the embedded cluster, whose cost grows with the number of batches it holds, cannot
    /// keep up with 50,000 msgs/s in the small batches a paced load makes (p50 of seconds).
    static let defaultPartitions = 8

    /// Runs every `linger.ms` `repeat` times and prints, per `linger.ms` and rate, the run with
    /// the median Δp99 with every run's Δp99.
    static func run(cluster: ClusterOptions, size: Int, partitions: Int, plan: LatencyPlan, repeat: Int, json: Bool)
        async throws
    {
        var lines: [LatencyLine] = []
        for _ in 0..<`repeat` {
            for linger in plan.lingers {
                let connection = try cluster.connect()
                defer { connection.close() }
                lines += try await measure(
                    linger: linger, connection: connection, size: size, partitions: partitions, plan: plan,
                    progress: { if !json { printError("… \(name) linger.ms \(linger): \($0)") } })
            }
        }
        for line in LatencyLine.medians(of: lines) {
            print(json ? line.jsonLine() : line.humanLine())
            fflush(nil) // all output streams: stdout is a C global Swift 6 will not touch
        }
    }

    /// One `linger.ms`: the two lines (fixed rate, 50% of the connector's maximum). Every point
    /// runs on fresh topics, connector and raw relay one after the other.
    static func measure(
        linger: Int, connection: ClusterConnection, size: Int, partitions: Int, plan: LatencyPlan,
        progress: (String) -> Void = { _ in }
    ) async throws -> [LatencyLine] {
        let clock = LatencyClock()
        func point<T>(
            _ side: LatencySession.Side, _ slug: String, _ label: String, _ body: (LatencySession) async throws -> T
        ) async throws -> (T, [String]) {
            progress("\(side), \(label)")
            let parameters = BenchParameters(messages: plan.maximumProbeMessages, size: size, partitions: partitions)
            var env = try BenchEnvironment.make(
                scenario: "\(name)-linger\(linger)-\(slug)-\(side)", parameters: parameters, connection: connection)
            env.producerOverrides = [("linger.ms", String(linger))]
            env.consumerOverrides = plan.consumerProperties
            let session = try await LatencySession.start(side, env: env, clock: clock, plan: plan)
            let value: T
            do {
                value = try await body(session)
            } catch {
                await session.abort()
                throw error
            }
            return (value, try await session.finish())
        }

        let probe = "maximum (\(plan.maximumProbeMessages) records unpaced)"
        let (connectorMaximum, _) = try await point(.connector, "max", probe) {
            try await $0.measureMaximum(messages: plan.maximumProbeMessages)
        }
        let (rawMaximum, _) = try await point(.raw, "max", probe) {
            try await $0.measureMaximum(messages: plan.maximumProbeMessages)
        }
        let half = max(1, Int(connectorMaximum / 2))
        var lines: [LatencyLine] = []
        for (basis, slug, rate) in [("fixed", "fixed", plan.rate), ("50% of max", "half", half)] {
            let (connector, connectorNotes) = try await point(.connector, slug, "\(rate) msgs/s") {
                try await $0.measure(rate: rate)
            }
            let (raw, rawNotes) = try await point(.raw, slug, "\(rate) msgs/s") { try await $0.measure(rate: rate) }
            var notes = [
                "\(size) B over \(partitions) partitions",
                "load generator linger.ms \(LoadGenerator.lingerMilliseconds)",
            ]
            notes += plan.consumerProperties.map { "consumers \($0.0)=\($0.1)" }
            notes += connectorNotes.map { "connector: \($0)" } + rawNotes.map { "raw: \($0)" }
            let lateness = max(connector.generatorLateness, raw.generatorLateness)
            if lateness > .milliseconds(1) {
                notes.append(
                    String(format: "load generator up to %.1f ms late for a deadline", lateness.inSeconds * 1000))
            }
            lines.append(
                LatencyLine(
                    lingerMilliseconds: linger, rateBasis: basis, connector: connector, raw: raw,
                    connectorMaximum: connectorMaximum, rawMaximum: rawMaximum, notes: notes))
        }
        return lines
    }
}
