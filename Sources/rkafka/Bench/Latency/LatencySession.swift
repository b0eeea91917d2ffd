import Histogram
import ReactiveKafka

/// One pipeline under test in the latency scenario with its own input and output topics, load
/// generator and output reader: started once (which includes its consumer group's join),
/// measured at several points in turn, then drained and checked. Used by one task at a time.
final class LatencySession {
    enum Side: String, Sendable {
        case connector, raw
    }

    /// One measured point: the latencies of its records.
    struct Sample: Sendable {
        var offeredRate: Int
        var histogram: Histogram<UInt64>
        /// How late the load generator woke for a deadline, at worst.
        var generatorLateness: Duration
    }

    private enum Relay {
        case connector(ConnectorRelay)
        case raw(RawRelay, Task<(relayed: Int, notes: [String]), any Error>, RelayEnding)

        /// How the relay ended, if it has.
        var ended: String? {
            switch self {
            case .connector(let connector): return connector.ended
            case .raw(_, _, let ending): return ending.description
            }
        }
    }

    let side: Side
    private let env: BenchEnvironment
    private let plan: LatencyPlan
    private let recorder: LatencyRecorder
    private let reader: LatencyReader
    private let readerTask: Task<[String], any Error>
    private let generator: LoadGenerator
    private let relay: Relay
    private var nextPoint: UInt32 = 1

    private init(
        side: Side, env: BenchEnvironment, plan: LatencyPlan, recorder: LatencyRecorder, reader: LatencyReader,
        readerTask: Task<[String], any Error>, generator: LoadGenerator, relay: Relay
    ) {
        self.side = side
        self.env = env
        self.plan = plan
        self.recorder = recorder
        self.reader = reader
        self.readerTask = readerTask
        self.generator = generator
        self.relay = relay
    }

    /// Starts the reader, the generator and the pipeline, and returns once records flow through it.
    static func start(_ side: Side, env: BenchEnvironment, clock: LatencyClock, plan: LatencyPlan) async throws
        -> LatencySession
    {
        let output = side == .connector ? env.connectorOutputTopic : env.baselineOutputTopic
        let recorder = LatencyRecorder()
        let reader = try LatencyReader(env, topic: output, recorder: recorder, clock: clock)
        let readerTask = Task { try await onDedicatedThread("rkafka-bench-latency-reader") { try reader.run() } }
        let generator: LoadGenerator
        let relay: Relay
        do {
            generator = try await onDedicatedThread("rkafka-bench-latency-generator") {
                try LoadGenerator(env, clock: clock)
            }
            switch side {
            case .connector:
                relay = .connector(try await ConnectorRelay.start(env))
            case .raw:
                let raw = try RawRelay(env, group: env.baselineGroup, outputTopic: output)
                let ending = RelayEnding()
                let task = Task {
                    do {
                        let outcome = try await onDedicatedThread("rkafka-bench-latency-raw-relay") { try raw.run() }
                        ending.record("the raw relay stopped")
                        return outcome
                    } catch {
                        ending.record("the raw relay failed: \(error)")
                        throw error
                    }
                }
                relay = .raw(raw, task, ending)
            }
        } catch {
            reader.stop()
            _ = try? await readerTask.value
            throw error
        }
        let session = LatencySession(
            side: side, env: env, plan: plan, recorder: recorder, reader: reader, readerTask: readerTask,
            generator: generator, relay: relay)
        do {
            try await onDedicatedThread("rkafka-bench-latency-generator") {
                try generator.warmUp(rate: 1_000, timeout: plan.readyTimeout) {
                    recorder.snapshot.unmeasured > 0 || relay.ended != nil
                }
            }
            if let ended = relay.ended { throw BenchError("latency: \(ended) before relaying anything") }
        } catch {
            await session.abort()
            throw error
        }
        return session
    }

    /// The pipeline's throughput, end to end: `messages` records produced as fast as the
    /// generator can, over the time from the first produced to the last read back.
    func measureMaximum(messages: Int) async throws -> Double {
        let point = takePoint()
        let generator = self.generator
        let started = try await onDedicatedThread("rkafka-bench-latency-generator") {
            try generator.unpaced(count: messages, point: point)
        }
        try await waitForRecords("\(side) maximum: all \(messages) records") { $0.count(of: point) >= messages }
        let lastRead = recorder.snapshot.points[point]?.lastRead ?? started
        return Double(messages) / max(1e-9, Double(lastRead - started) / 1e9)
    }

    /// The latencies at `rate`: a warm-up, then the measured point at the same rate, until every
    /// record of it was read back.
    func measure(rate: Int) async throws -> Sample {
        let point = takePoint()
        let (generator, plan) = (self.generator, self.plan)
        let paced = try await onDedicatedThread("rkafka-bench-latency-generator") {
            try generator.paced(rate: rate, warmUp: plan.warmUp, measured: plan.measured, point: point)
        }
        try await waitForRecords("\(side) at \(rate) msgs/s: all \(paced.measured) records") {
            $0.count(of: point) >= paced.measured
        }
        let histogram =
            recorder.snapshot.points[point]?.histogram
            ?? Histogram(highestTrackableValue: LatencyRecorder.highestMicroseconds)
        return Sample(offeredRate: rate, histogram: histogram, generatorLateness: paced.worstLateness)
    }

    /// Stops the pipeline after what it consumed is produced and committed, then checks that every
    /// record produced into it was read back exactly once and that its group committed them all.
    func finish() async throws -> [String] {
        let produced = generator.produced
        var notes: [String] = []
        do {
            try await waitForRecords("\(side): all \(produced) records") {
                $0.unmeasured + $0.points.values.reduce(0) { $0 + $1.count } >= produced
            }
            switch relay {
            case .connector(let connector):
                try await connector.drain()
            case .raw(let raw, let task, _):
                raw.stop()
                notes += try await task.value.notes.map { "raw relay: \($0)" }
            }
        } catch {
            await abort()
            throw error
        }
        reader.stop()
        notes += try await readerTask.value.map { "reader: \($0)" }
        let s = recorder.snapshot
        let read = s.unmeasured + s.points.values.reduce(0) { $0 + $1.count }
        if read > produced { notes.append("\(read - produced) records read twice") }
        let group = side == .connector ? env.connectorGroup : env.baselineGroup
        let env = self.env
        notes.append(
            try await onDedicatedThread("rkafka-bench-verify") {
                try verifyCommitted(env, group: group, expected: produced)
            })
        return notes
    }

    /// Stops everything without waiting for records in flight or checking them.
    func abort() async {
        switch relay {
        case .connector(let connector):
            await connector.shutdown()
        case .raw(let raw, let task, _):
            raw.stop()
            _ = try? await task.value
        }
        reader.stop()
        _ = try? await readerTask.value
    }

    /// Waits for the reader's records; a relay that ended meanwhile is the reason given if they do not come.
    private func waitForRecords(_ what: String, until condition: @escaping @Sendable (LatencyRecorder.Snapshot) -> Bool)
        async throws
    {
        do {
            try await recorder.wait(for: what, timeout: plan.drainTimeout, until: condition)
        } catch {
            if let ended = relay.ended { throw BenchError("latency: \(ended) (waiting for \(what))") }
            throw error
        }
    }

    private func takePoint() -> UInt32 {
        defer { nextPoint += 1 }
        return nextPoint
    }
}
