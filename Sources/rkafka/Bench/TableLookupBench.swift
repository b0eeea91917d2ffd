import ReactiveKafka

/// `table-lookup`: point look-ups (`table[key]`) in a restored in-memory ``KafkaTable`` of
/// 10,000 rows, key `i % 10,000` for look-up `i`, against the same look-ups in a Swift
/// dictionary holding the same rows. No record moves: the table is restored from a topic of
/// its own first (not measured), and each side makes `--messages` look-ups (after one
/// unmeasured warm-up pass), counting the hits, which must equal the look-ups.
enum TableLookupBench {
    static let scenario = KafkaBenchScenario(
        name: "table-lookup",
        baselineDescription: "Swift dictionary look-up (the same 10,000 rows)",
        consumesSeededInput: false,
        baseline: { env in try baseline(env) },
        connector: Connector()
    )

    static func baseline(_ env: BenchEnvironment) throws -> BenchMeasurement {
        let keys = TableJoinBench.keys
        let rows = Dictionary(uniqueKeysWithValues: (0..<keys).map { ($0, KafkaBytes("customer-\($0)")) })
        let lookups = env.parameters.messages
        _ = hits(lookups, keys) { rows[$0] }
        var meter = PhaseMeter()
        meter.begin()
        let found = hits(lookups, keys) { rows[$0] }
        let measurement = meter.finish(messages: lookups, notes: ["\(keys) rows"])
        guard found == lookups else { throw BenchError("table-lookup baseline: \(found) hits for \(lookups) look-ups") }
        return measurement
    }

    /// How many of `lookups` look-ups (key `i % keys`) find a row. Inlined into each caller,
    /// so each side's look-up is called directly.
    @inline(__always)
    static func hits(_ lookups: Int, _ keys: Int64, _ lookUp: (Int64) -> KafkaBytes?) -> Int {
        var found = 0
        var key: Int64 = 0
        for _ in 0..<lookups {
            if lookUp(key) != nil { found += 1 }
            key += 1
            if key == keys { key = 0 }
        }
        return found
    }

    /// The connector side: restores the table (not measured), then looks keys up in it.
    struct Connector: ConnectorBenchmark {
        func run(_ env: BenchEnvironment) async throws -> BenchMeasurement {
            let table = try await TableJoinBench.restoredTable(env)
            let running = Task { try await table.run() }
            defer { table.close() }
            try await table.ready()
            guard table.count == Int(TableJoinBench.keys) else {
                throw BenchError("table-lookup: the table restored \(table.count) of \(TableJoinBench.keys) rows")
            }
            let lookups = env.parameters.messages
            _ = TableLookupBench.hits(lookups, TableJoinBench.keys) { table[$0] }
            var meter = PhaseMeter()
            meter.begin()
            let found = TableLookupBench.hits(lookups, TableJoinBench.keys) { table[$0] }
            let measurement = meter.finish(messages: lookups, notes: ["\(table.count) rows, in memory"])
            table.close()
            try await running.value
            guard found == lookups else { throw BenchError("table-lookup: \(found) hits for \(lookups) look-ups") }
            return measurement
        }
    }
}
