import Testing

@testable import ReactiveKafka

/// Which rebalance protocol a member uses when librdkafka cannot say (it answers NULL while its
/// group handler terminates, as in a rebalance callback during close): the configured strategy's.
@Suite struct RebalanceProtocolTests {
    @Test(arguments: [
        ("cooperative-sticky", true),
        (" cooperative-sticky ", true),
        ("range", false),
        ("range,roundrobin", false),
        ("roundrobin, cooperative-sticky", true),
        ("", false),
    ])
    func theConfiguredStrategyNamesTheProtocol(strategy: String, cooperative: Bool) {
        #expect(ConsumerEngine.configuresCooperativeProtocol(strategy) == cooperative)
    }

    @Test func librdkafkasDefaultStrategyIsEager() {
        #expect(!ConsumerEngine.configuresCooperativeProtocol(nil))
    }
}
