import Testing

@testable import rkafka

@Suite struct DemoTallyTests {
    @Test func countsMissingAndRepeatedIds() {
        let tally = DemoTally(events: 6, outputIds: [0, 1, 1, 3, 5, 5, 5])
        #expect(tally.lost == 2, "ids 2 and 4 have no output")
        #expect(tally.duplicated == 3, "one extra 1, two extra 5s")
        #expect(tally.unexpected == 0)
    }

    @Test func idsOutsideTheInputAreUnexpectedNotDuplicates() {
        let tally = DemoTally(events: 3, outputIds: [0, 1, 2, 3, -1])
        #expect(tally == DemoTally(events: 3, outputIds: [0, 1, 2]).with(unexpected: 2))
    }

    @Test func aCompleteOutputTalliesClean() {
        let tally = DemoTally(events: 1000, outputIds: (0..<1000).reversed())
        #expect(tally.lost == 0 && tally.duplicated == 0 && tally.unexpected == 0)
    }

    @Test func enrichmentKeepsTheOrderAndDerivesFields() {
        let order = DemoOrder(id: 7, customer: "c", amount: 800)
        let enriched = DemoEnrichedOrder(order, run: 2)
        #expect(enriched.id == 7 && enriched.customer == "c" && enriched.amount == 800 && enriched.run == 2)
        #expect(enriched.tier == "gold")
        #expect(enriched.gross == 960)
        #expect(DemoEnrichedOrder(DemoOrder(id: 1, customer: "c", amount: 10), run: 1).tier == "bronze")
    }

    @Test func progressBarFillsWithTheFraction() {
        let bar = DemoProgressBar(total: 200)
        #expect(bar.bar(0) == "[" + String(repeating: ".", count: 40) + "]   0%")
        #expect(bar.bar(90) == "[" + String(repeating: "#", count: 18) + String(repeating: ".", count: 22) + "]  45%")
        #expect(bar.bar(500) == "[" + String(repeating: "#", count: 40) + "] 100%", "overshoot is capped")
    }
}

extension DemoTally {
    func with(unexpected: Int) -> DemoTally {
        var copy = self
        copy.unexpected = unexpected
        return copy
    }
}
