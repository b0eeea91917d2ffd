import ArgumentParser

/// `rkafka`: the swift-reactive-kafka command-line tool.
@main
struct RKafka: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rkafka",
        abstract: "Reactive Kafka streams in Swift: broker, produce, consume, demo, bench, lag.",
        subcommands: [
            BrokerCommand.self, ProduceCommand.self, ConsumeCommand.self, DemoCommand.self, BenchCommand.self,
            LagCommand.self,
        ]
    )
}
