import ArgumentParser

/// The options of `rkafka bench --scenario latency`.
struct LatencyOptions: ParsableArguments {
    @Option(
        help:
            "latency: the fixed offered rate, msgs/s (the scenario also offers 50% of the connector pipeline's measured maximum)."
    )
    var rate: Int = 50_000

    @Option(
        name: .customLong("linger-ms"),
        help: ArgumentHelp(
            "latency: linger.ms of the pipelines' producers, one run each (comma-separated).", valueName: "ms[,ms…]")
    )
    var lingerList: String = "0,5"

    @Option(help: "latency: seconds measured per point, after a 0.5 s warm-up at the same rate.")
    var pointSeconds: Double = 3

    /// The `--linger-ms` values, in the order given, or `nil` when one is not a whole number ≥ 0.
    var lingers: [Int]? {
        let values = lingerList.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ $0.map { $0 >= 0 } ?? false }) else { return nil }
        return values.compactMap { $0 }
    }

    func validate() throws {
        guard rate >= 1 else { throw ValidationError("--rate must be at least 1 msg/s, got \(rate)") }
        guard lingers != nil else {
            throw ValidationError(
                "--linger-ms takes whole milliseconds ≥ 0 separated by commas (e.g. 0,5), got \"\(lingerList)\"")
        }
        guard pointSeconds > 0, pointSeconds <= 3600 else {
            throw ValidationError("--point-seconds must be more than 0 and at most 3600, got \(pointSeconds)")
        }
    }

    var plan: LatencyPlan {
        LatencyPlan(rate: rate, lingers: lingers ?? [], measured: .milliseconds(Int64((pointSeconds * 1000).rounded())))
    }
}

/// What the latency scenario measures, and for how long.
struct LatencyPlan: Sendable {
    /// The fixed offered rate, msgs/s.
    var rate: Int
    /// One run per value: the `linger.ms` of both pipelines' producers.
    var lingers: [Int]
    /// Produced at a point's rate before its measured records, which are only those after it.
    var warmUp: Duration = .milliseconds(500)
    /// How long each point's measured records are produced.
    var measured: Duration
    /// Records of the unpaced run that measures a pipeline's maximum.
    var maximumProbeMessages = 300_000
    /// How long a pipeline may take to relay its first record (its consumer group's join).
    var readyTimeout: Duration = .seconds(60)
    /// How long the records of a point may take to be read back once all are produced.
    var drainTimeout: Duration = .seconds(60)
    /// Set after the benchmark's consumer properties, for every consumer (pipelines and reader).
    /// The embedded cluster holds a fetch that finds nothing for the whole `fetch.wait.max.ms` even
    /// when records arrive meanwhile (a broker answers at once): with librdkafka's 500 ms that is
    /// what a record waits at each consumer; at 1 ms what it adds stays under a millisecond
    /// (measured at 50,000 msgs/s, p50 of both sides: 12–14 ms with 1, 17–18 with 5, 31–33 with 20).
    var consumerProperties: [(String, String)] = [("fetch.wait.max.ms", "1")]
}
