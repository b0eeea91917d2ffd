import AsyncAlgorithms
import StreamKit
import Testing

@Suite struct SourceTests {
    @Test func mapAndFilterKeepTheMaterializedValue() async throws {
        let source = Source([1, 2, 3, 4].async, materialized: "mat")
            .map { $0 * 10 }
            .filter { $0 > 10 }
        #expect(source.materialized == "mat")
        let collected = try await source.run(into: Sinks.collect(Int.self))
        #expect(collected == [20, 30, 40])
    }

    @Test func viaAppliesAFlowAndToRunsIntoASink() async throws {
        let double = FlowOf<Int, Int> { $0.map { $0 * 2 } }
        let graph = Source([1, 2, 3].async).via(double).to(Sinks.collect(Int.self))
        let result = try await graph.start().completion.value
        #expect(result == [2, 4, 6])
    }
}
