/// The demo's input event: an order placed by a customer.
struct DemoOrder: Codable, Sendable, Equatable {
    var id: Int
    var customer: String
    var amount: Double

    /// The `index`th order of the sample data set: deterministic, so reruns see the same data.
    static func sample(_ index: Int) -> DemoOrder {
        DemoOrder(id: index, customer: "customer-\(index % 997)", amount: Double((index &* 7919) % 100_000) / 100)
    }
}

/// The pipeline's output: the order enriched with derived fields.
struct DemoEnrichedOrder: Codable, Sendable, Equatable {
    var id: Int
    var customer: String
    var amount: Double
    /// Price band, from the amount.
    var tier: String
    /// The amount with 20% tax, rounded to cents.
    var gross: Double
    /// Which run of the pipeline wrote it (1 before the interruption, 2 after).
    var run: Int

    init(_ order: DemoOrder, run: Int) {
        id = order.id
        customer = order.customer
        amount = order.amount
        tier = order.amount >= 750 ? "gold" : order.amount >= 250 ? "silver" : "bronze"
        gross = (order.amount * 120).rounded() / 100
        self.run = run
    }
}

/// What the verification found, from the ids read back from the output topic.
struct DemoTally: Sendable, Equatable {
    /// Input ids with no output record.
    var lost: Int
    /// Output records beyond one per input id.
    var duplicated: Int
    /// Output records whose id is not an input id at all.
    var unexpected: Int

    /// Tallies `outputIds` against the input ids `0..<events`.
    init<S: Sequence<Int>>(events: Int, outputIds: S) {
        var seen = [UInt8](repeating: 0, count: events)
        var duplicated = 0
        var unexpected = 0
        for id in outputIds {
            guard id >= 0, id < events else {
                unexpected += 1
                continue
            }
            if seen[id] != 0 { duplicated += 1 } else { seen[id] = 1 }
        }
        self.lost = seen.lazy.filter { $0 == 0 }.count
        self.duplicated = duplicated
        self.unexpected = unexpected
    }
}
