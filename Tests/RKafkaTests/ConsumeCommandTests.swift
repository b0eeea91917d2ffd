import Foundation
import ReactiveKafka
import ReactiveKafkaTestKit
import Testing

@testable import rkafka

/// `rkafka consume`'s stream on the embedded cluster: what it writes and what it commits.
@Suite(.serialized) struct ConsumeCommandTests {
    static func settings(_ kafka: EmbeddedKafka, group: String) -> ConsumerSettings<KafkaBytes?, KafkaBytes?> {
        ConsumeCommand.settings(bootstrapServers: kafka.bootstrapServers, group: group, fromBeginning: true)
            .withProperties(EmbeddedKafka.fastGroupProperties)
    }

    /// Runs the command's stream into a temporary file until `limit` records are written; returns the JSON lines.
    static func consume(_ kafka: EmbeddedKafka, group: String, topic: String, limit: Int, committable: Bool)
        async throws -> [[String: Any]]
    {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("rkafka-consume-\(UUID().uuidString)")
            .path
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        try #require(fd >= 0)
        defer {
            close(fd)
            unlink(path)
        }
        let run = ConsumeRun(writer: OutputWriter(descriptor: fd), format: .json, limit: limit)
        let control = ConsumeCommand.graph(
            settings(kafka, group: group), topic: topic, committable: committable, run: run
        ).start()
        // Reaching the limit stops the source; the stream then completes on its own.
        try await control.streamCompletion.value
        await control.shutdown()
        #expect(run.written == limit)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return try text.split(separator: "\n").map { line in
            try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
    }

    @Test func withAGroupItCommitsExactlyWhatItWroteAndResumesAfterIt() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("cc", partitions: 3)
        let input = (0..<300).map { (key: "k\($0)" as String?, value: "v\($0)") }
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "cc", records: input, roundRobinOver: 3)

        let first = try await Self.consume(kafka, group: "g-cc", topic: "cc", limit: 200, committable: true)
        #expect(first.count == 200)
        var highest: [Int32: Int64] = [:]
        for object in first {
            let partition = Int32(object["partition"] as! Int)
            highest[partition] = max(highest[partition] ?? -1, Int64(object["offset"] as! Int))
        }
        let committed = try await TestData.committedOffsets(
            bootstrapServers: kafka.bootstrapServers, group: "g-cc", topic: "cc", partitions: 3)
        #expect(committed == highest.mapValues { $0 + 1 }, "committed up to what was written, nothing beyond")

        let second = try await Self.consume(kafka, group: "g-cc", topic: "cc", limit: 100, committable: true)
        let values = (first + second).compactMap { $0["value"] as? String }
        #expect(Set(values) == Set(input.map(\.value)), "the restart resumes after the committed records")
        #expect(values.count == 300, "nothing written twice")
    }

    @Test func withoutAGroupItCommitsNothing() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("plain-cc", partitions: 2)
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "plain-cc",
            records: (0..<50).map { (key: nil as String?, value: "p\($0)") }, roundRobinOver: 2)
        let lines = try await Self.consume(kafka, group: "g-plain-cc", topic: "plain-cc", limit: 50, committable: false)
        #expect(Set(lines.compactMap { $0["value"] as? String }) == Set((0..<50).map { "p\($0)" }))
        #expect(lines.allSatisfy { $0["key"] is NSNull })
        let committed = try await TestData.committedOffsets(
            bootstrapServers: kafka.bootstrapServers, group: "g-plain-cc", topic: "plain-cc", partitions: 2)
        #expect(committed.isEmpty)
    }
}
