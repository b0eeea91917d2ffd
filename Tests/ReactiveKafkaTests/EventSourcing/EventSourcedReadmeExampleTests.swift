import Foundation
import ReactiveKafka
import ReactiveKafkaTestKit
import StreamKit
import Synchronization
import Testing

// README event sourcing behaviour: begin
enum AccountEvent: Codable, Sendable {
    case deposited(Int)
    case withdrew(Int)
}

struct Overdrawn: Error {
    let balance: Int
}

/// An account: a command is a signed amount; a withdrawal beyond the balance is refused.
let account = EventSourcedBehavior<Int, String, AccountEvent, Overdrawn>(
    initialState: 0,
    decide: { (balance: Int, command: String) throws(Overdrawn) -> [AccountEvent] in
        let amount = Int(command) ?? 0
        if amount >= 0 { return [.deposited(amount)] }
        guard balance + amount >= 0 else { throw Overdrawn(balance: balance) }
        return [.withdrew(-amount)]
    },
    evolve: { balance, event in
        switch event {
        case .deposited(let amount): return balance + amount
        case .withdrew(let amount): return balance - amount
        }
    })
// README event sourcing behaviour: end

/// What the README example prints, and when it has printed enough.
final class PrintedLines: Sendable {
    private let lines = Mutex<[String]>([])
    private let gate = CountGate()

    func add(_ line: String) {
        gate.reached(
            lines.withLock {
                $0.append(line)
                return $0.count
            })
    }
    var all: [String] { lines.withLock { $0 } }
    func wait(for count: Int) async -> Bool { await gate.wait(for: count, timeout: .seconds(60)) }
}

/// The README's event-sourcing example, verbatim apart from the cluster address and file path, so it cannot rot.
@Suite struct EventSourcedReadmeExampleTests {
    @Test func theReadmeShowsThisCodeVerbatim() throws {
        try ReadmeBlocks.expectInReadme(markers: ["README event sourcing behaviour", "README event sourcing flow"])
    }

    @Test func theReadmeExampleKeepsBalancesAndRefusesAnOverdraft() async throws {
        let kafka = try EmbeddedKafka()
        for topic in ["account-commands", "account-events", "account-replies"] {
            try kafka.createTopic(topic, partitions: 1)
        }
        try await TestData.produce(
            bootstrapServers: kafka.bootstrapServers, topic: "account-commands",
            records: [
                (key: "ann", value: "100"), (key: "ann", value: "-30"), (key: "ann", value: "-500"),
                (key: "bob", value: "20"),
            ])
        let bootstrapServers = kafka.bootstrapServers
        let snapshotPath = FileManager.default.temporaryDirectory
            .appendingPathComponent("accounts-\(UUID().uuidString).sqlite").path
        defer { try? FileManager.default.removeItem(atPath: snapshotPath) }
        let printed = PrintedLines()
        let print: @Sendable (String) -> Void = printed.add

        // README event sourcing flow: begin
        let consumer = ConsumerSettings(keyDeserializer: .string, valueDeserializer: .string)
            .withBootstrapServers(bootstrapServers)
            .withGroupId("accounts")
            .withProperty("auto.offset.reset", "earliest")
        let producer = ProducerSettings(keySerializer: .string, valueSerializer: .string)
            .withBootstrapServers(bootstrapServers)
        let settings = EventSourcedSettings<String, Int, AccountEvent>.json(changelogTopic: "account-events")
            .withSnapshotEvery(100)
            .withSnapshotStore(path: snapshotPath)

        let control = try Transactional.source(consumer, subscription: .topics("account-commands"))
            .via(
                EventSourced.flow(
                    account, settings: settings, consumerSettings: consumer, producerSettings: producer,
                    transactionalId: "accounts-1"
                ) { command, outcome in
                    let reply = outcome.rejection == nil ? "balance \(outcome.state)" : "refused \(command)"
                    return [ProducerRecord(topic: "account-replies", key: outcome.key, value: reply)]
                }
            )
            .to(Sinks.forEach { outcome in print("\(outcome.key): \(outcome.state)") }) // once committed
            .start()
        // README event sourcing flow: end

        #expect(await printed.wait(for: 4), "the example did not print 4 committed outcomes within 60 s")
        try await control.drainAndShutdown()
        #expect(printed.all == ["ann: 100", "ann: 70", "ann: 70", "bob: 20"])
    }
}
