import Testing

@testable import rkafka

@Suite struct TopicSpecTests {
    @Test func parsesNameAndPartitions() throws {
        #expect(try TopicSpec(parsing: "orders:8") == TopicSpec(name: "orders", partitions: 8))
        #expect(try TopicSpec(parsing: "my.topic_2-x") == TopicSpec(name: "my.topic_2-x", partitions: 1))
    }

    @Test(arguments: ["orders:0", "orders:-1", "orders:x", "orders:", ":4", "bad name:3", "ü:2", "..:1"])
    func rejectsMalformedSpecs(_ text: String) {
        #expect(throws: TopicSpecError.self) { try TopicSpec(parsing: text) }
    }

    @Test func brokerCommandParsesRepeatedTopics() throws {
        let command = try BrokerCommand.parse(["--brokers", "3", "--topic", "a:4", "--topic", "b"])
        #expect(command.brokers == 3)
        #expect(command.topics == [TopicSpec(name: "a", partitions: 4), TopicSpec(name: "b", partitions: 1)])
        #expect(throws: (any Error).self) { try BrokerCommand.parse(["--topic", "a:zero"]) }
        #expect(throws: (any Error).self) { try BrokerCommand.parse(["--brokers", "0"]) }
    }

    @Test func produceCommandRejectsAnEmptySeparator() {
        #expect(throws: (any Error).self) { try ProduceCommand.parse(["--topic", "t", "--key-separator", ""]) }
        #expect(throws: (any Error).self) {
            try ProduceCommand.parse(["--topic", "t", "--bootstrap-servers", "nohost"])
        }
    }
}
