import Foundation
import StreamKit
import Testing

// The code of StreamKit.docc/BuildingStreams.md, compiled (and where it runs alone, run) here;
// each block must appear verbatim in the article, so the article cannot drift from the API.

private struct Order: Sendable {}
private struct Quote: Sendable {}
private struct Pricing: Sendable {
    func quote(_ order: Order) async throws -> Quote { Quote() }
}

@Suite struct BuildingStreamsArticleTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let article = root.appendingPathComponent("Sources/StreamKit/StreamKit.docc/BuildingStreams.md")

    @Test func theArticleShowsThisCodeVerbatim() throws {
        let text = try String(contentsOf: Self.article, encoding: .utf8)
        let source = try String(contentsOfFile: #filePath, encoding: .utf8)
        for marker in ["sources", "flow", "running", "manual clock"] {
            let block = try #require(Self.block("article \(marker)", in: source), "no \(marker) block")
            #expect(text.contains(block), "BuildingStreams.md does not show the \(marker) block verbatim")
        }
        // The factorials block is the factorials example's code.
        let example = try String(
            contentsOf: Self.root.appendingPathComponent("Examples/factorials/main.swift"), encoding: .utf8)
        let factorials = """
            let factorials = Source.from(1...100)
                .transform { $0.scan(BigInt(1)) { accumulated, next in accumulated * BigInt(next) } }
            """
        #expect(example.contains(factorials) && text.contains(factorials))
    }

    @Test func sourcesFromASequenceAndAFile() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("in-\(UUID().uuidString).txt").path
        try "a\nb\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let lines = try await Self.sources(path: path)
        #expect(lines == ["a", "b"])
    }

    static func sources(path: String) async throws -> [String] {
        // article sources: begin
        let numbers = Source.from(1...100) // Source<…, Void>
        let lines = Source(FileSource(path: path).lines())
        // article sources: end
        #expect(try await numbers.run(into: Sinks.collect()) == Array(1...100))
        return try await lines.run(into: Sinks.collect())
    }

    @Test func aFlowAppliesItsClosure() async throws {
        let pricing = Pricing()
        let orders = Source.from([Order(), Order(), Order()])
        // article flow: begin
        let quote = FlowOf<Order, Quote> { orders in orders.mapAsync(parallelism: 4) { try await pricing.quote($0) } }
        let quotes = orders.via(quote)
        // article flow: end
        #expect(try await quotes.run(into: Sinks.collect()).count == 3)
    }

    @Test func aStartedGraphCompletesWithItsSinksResult() async throws {
        // article running: begin
        let graph = Source.from(1...100).map { $0 * 2 }.to(Sinks.collect())
        let running = graph.start()
        let doubled = try await running.completion.value
        // article running: end
        #expect(doubled == (1...100).map { $0 * 2 })
    }

    @Test func aManualClockReleasesABatchWhenAdvanced() async throws {
        let (events, continuation) = AsyncStream<Int>.makeStream()
        continuation.yield(1) // and never finishes: only the clock can release the batch
        defer { continuation.finish() }
        // article manual clock: begin
        let clock = ManualClock()
        let batches = events.groupedWithin(count: 100, duration: .seconds(1), clock: clock)
        let first = Task { try await batches.first { _ in true } }
        await clock.waitForSleepers()
        clock.advance(by: .seconds(1))
        // article manual clock: end
        #expect(try await first.value == [1])
    }

    /// The lines between `// <marker>: begin` and `// <marker>: end`, dedented.
    static func block(_ marker: String, in source: String) -> String? {
        let lines = source.split(separator: "\n", omittingEmptySubsequences: false)
        guard let begin = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces) == "// \(marker): begin" }),
            let end = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces) == "// \(marker): end" }),
            begin < end
        else { return nil }
        let body = lines[(begin + 1)..<end]
        let indent = body.filter { !$0.allSatisfy(\.isWhitespace) }.map { $0.prefix { $0 == " " }.count }.min() ?? 0
        return body.map { $0.allSatisfy(\.isWhitespace) ? "" : String($0.dropFirst(indent)) }.joined(separator: "\n")
    }
}
