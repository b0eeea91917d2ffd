import ArgumentParser
import Testing

@testable import rkafka

/// `rkafka consume --property KEY=VALUE`: librdkafka properties passed through to the consumer.
@Suite struct ConsumePropertyOptionTests {
    @Test func propertiesAreRepeatableAndReachTheConsumerSettings() throws {
        let command = try ConsumeCommand.parse([
            "--topic", "t", "--group", "g",
            "--property", "session.timeout.ms=6000", "--property", "heartbeat.interval.ms=100",
            "--property", "client.id=a=b",
        ])
        let properties = try command.properties
        #expect(properties == ["session.timeout.ms": "6000", "heartbeat.interval.ms": "100", "client.id": "a=b"])
        let settings = ConsumeCommand.settings(
            bootstrapServers: "localhost:9092", group: "g", fromBeginning: true, properties: properties)
        #expect(settings.properties["session.timeout.ms"] == "6000")
        #expect(settings.properties["client.id"] == "a=b")
        #expect(settings.properties["enable.auto.commit"] == "false")
        #expect(settings.properties["group.id"] == "g")
    }

    @Test func malformedOrReservedPropertiesAreRejectedWithTheReason() {
        for (argument, reason) in [
            ("session.timeout.ms", "KEY=VALUE"), ("=6000", "KEY=VALUE"),
            ("group.id=x", "--group"), ("bootstrap.servers=h:1", "--bootstrap-servers"),
            ("enable.auto.commit=true", "commits what it has written"),
            ("auto.offset.reset=latest", "--from-beginning"),
        ] {
            do {
                _ = try ConsumeCommand.parse(["--topic", "t", "--property", argument])
                Issue.record("--property \(argument) was accepted")
            } catch {
                let message = ConsumeCommand.fullMessage(for: error)
                #expect(message.contains(reason), "\(argument): \(message)")
            }
        }
    }
}
