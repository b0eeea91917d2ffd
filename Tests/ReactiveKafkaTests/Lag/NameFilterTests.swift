import ReactiveKafka
import Testing

@Suite struct NameFilterTests {
    @Test func patternsMatchWholeNames() throws {
        let filter = try NameFilter(["orders-.*", "billing"])
        #expect(filter.matches("orders-eu"))
        #expect(filter.matches("billing"))
        #expect(!filter.matches("old-orders-eu"), "a pattern matches the whole name, not a part of it")
        #expect(!filter.matches("billing-2"))
    }

    @Test func noPatternMatchesEverything() {
        #expect(NameFilter.all.matches("anything"))
        #expect(NameFilter.all.needsListing)
        #expect(NameFilter.all.literalNames.isEmpty)
    }

    @Test func plainNamesCanBeReadWithoutListing() throws {
        let literal = try NameFilter(["billing", "orders.v2_eu-1"])
        #expect(literal.literalNames == ["billing", "orders.v2_eu-1"])
        #expect(!literal.needsListing)
        let mixed = try NameFilter(["billing", "orders-.*"])
        #expect(mixed.literalNames == ["billing"])
        #expect(mixed.needsListing)
    }

    @Test func anInvalidPatternIsATypedErrorNamingIt() {
        #expect {
            _ = try NameFilter(["ok", "orders-(["])
        } throws: { error in
            guard let error = error as? KafkaError else { return false }
            return error.kind == .invalidConfiguration && error.message.contains("\"orders-([\"")
        }
    }
}
