import Testing

@testable import ReactiveKafka

/// A bank account: deposits and withdrawals, an overdraft rejected with a typed error.
enum Account {
    enum Command: Sendable, Equatable {
        case deposit(Int)
        case withdraw(Int)
        case noop
    }
    enum Event: Sendable, Equatable {
        case deposited(Int)
        case withdrew(Int)
    }
    struct Overdraft: Error, Equatable {
        let balance: Int
        let requested: Int
    }

    static let behavior = EventSourcedBehavior<Int, Command, Event, Overdraft>(
        initialState: 0,
        decide: { (balance: Int, command: Command) throws(Overdraft) -> [Event] in
            switch command {
            case .deposit(let amount): return [.deposited(amount)]
            case .withdraw(let amount):
                guard amount <= balance else { throw Overdraft(balance: balance, requested: amount) }
                return [.withdrew(amount)]
            case .noop: return []
            }
        },
        evolve: { balance, event in
            switch event {
            case .deposited(let amount): return balance + amount
            case .withdrew(let amount): return balance - amount
            }
        })
}

/// The pure state behind event-sourced stages: decisions, snapshots, the replay ledger and recovery.
@Suite struct EventSourcedStateTests {
    typealias Entities = EventSourcedEntities<String, Int, Account.Command, Account.Event, Account.Overdraft>

    @Test func acceptedCommandsEvolveTheStatePerKey() {
        var entities = Entities(behavior: Account.behavior, snapshotEvery: 10)
        guard case .accepted(let events, let state, let due) = entities.handle(.deposit(5), for: "a") else {
            Issue.record("deposit rejected")
            return
        }
        #expect(events == [.deposited(5)])
        #expect(state == 5)
        #expect(!due)
        _ = entities.handle(.deposit(7), for: "b")
        _ = entities.handle(.withdraw(2), for: "a")
        #expect(entities.state(of: "a") == 3)
        #expect(entities.state(of: "b") == 7)
        #expect(entities.state(of: "unknown") == 0)
    }

    @Test func aRejectedCommandChangesNothingAndCarriesTheTypedError() {
        var entities = Entities(behavior: Account.behavior, snapshotEvery: 2)
        _ = entities.handle(.deposit(3), for: "a")
        guard case .rejected(let rejection) = entities.handle(.withdraw(4), for: "a") else {
            Issue.record("overdraft accepted")
            return
        }
        #expect(rejection == Account.Overdraft(balance: 3, requested: 4))
        #expect(entities.state(of: "a") == 3)
        #expect(entities.entities["a"]?.eventsSinceSnapshot == 1)
    }

    @Test func aCommandWithoutEventsIsAcceptedAndCreatesNoEntity() {
        var entities = Entities(behavior: Account.behavior, snapshotEvery: 1)
        guard case .accepted(let events, let state, let due) = entities.handle(.noop, for: "a") else {
            Issue.record("noop rejected")
            return
        }
        #expect(events.isEmpty && state == 0 && !due)
        #expect(entities.entities.isEmpty)
    }

    @Test func aSnapshotIsDueEveryNEventsOfAKey() {
        var entities = Entities(behavior: Account.behavior, snapshotEvery: 3)
        var dues: [Bool] = []
        for amount in 1...7 {
            if case .accepted(_, _, let due) = entities.handle(.deposit(amount), for: "a") { dues.append(due) }
            _ = entities.handle(.deposit(1), for: "b") // another key counts apart
        }
        #expect(dues == [false, false, true, false, false, true, false])
        #expect(entities.entities["a"]?.eventsSinceSnapshot == 1)
    }

    @Test func forgettingAPartitionsKeysDropsOnlyThem() {
        var entities = Entities(behavior: Account.behavior, snapshotEvery: 3)
        for key in ["a", "b", "c"] { _ = entities.handle(.deposit(1), for: key) }
        entities.forget { $0 != "b" }
        #expect(Array(entities.entities.keys) == ["b"])
        entities.restore("a", .init(state: 42, eventsSinceSnapshot: 2))
        #expect(entities.state(of: "a") == 42)
    }

    @Test func theLedgerStartsAReplayAtTheFirstEventNoSnapshotHolds() {
        var ledger = SnapshotLedger<String>(end: 0)
        #expect(ledger.replayFrom == 0)
        ledger.committed("a", at: 0)
        ledger.committed("b", at: 1)
        ledger.committed("a", at: 2)
        #expect(ledger.replayFrom == 0)
        ledger.snapshotted("a", through: 2)
        #expect(ledger.replayFrom == 1)
        ledger.snapshotted("b", through: 1)
        #expect(ledger.replayFrom == 3)
        ledger.committed("b", at: 3)
        ledger.snapshotted("a", through: 1) // an older snapshot of a does not cover b's event
        #expect(ledger.replayFrom == 3)
        ledger.committed("a", at: 4)
        ledger.committed("a", at: 5)
        ledger.snapshotted("a", through: 4) // a's event at 5 is not in it: the start stays at 4
        #expect(ledger.uncovered["a"] == 4)
        ledger.snapshotted("b", through: 3)
        ledger.snapshotted("a", through: 5)
        #expect(ledger.replayFrom == 6)
    }

    @Test func replayFoldsEventsOntoSnapshotsAndSkipsWhatTheyHold() {
        var replay = EventSourcedReplay<String, Int, Account.Event>(
            initialState: 0, evolve: Account.behavior.evolve,
            snapshots: ["a": EntitySnapshot(state: 10, offset: 4)], from: 3)
        replay.apply(.deposited(1), of: "b", at: 3)
        replay.apply(.deposited(5), of: "a", at: 4) // held by a's snapshot
        replay.apply(.withdrew(2), of: "a", at: 5)
        replay.apply(.deposited(4), of: "b", at: 6)
        #expect(replay.recovered["a"]?.state == 8)
        #expect(replay.recovered["a"]?.eventsSinceSnapshot == 1)
        #expect(replay.recovered["b"]?.state == 5)
        #expect(replay.recovered["b"]?.eventsSinceSnapshot == 2)
        #expect(replay.ledger.uncovered == ["a": 5, "b": 3])
        #expect(replay.ledger.replayFrom == 3)
        #expect(replay.ledger.end == 7)
    }

    @Test func recoveryFromAnySnapshotEqualsApplyingEveryCommandOnce() {
        // Commands over three keys, the changelog they write, then recoveries from snapshots
        // taken at every point: each must give the state the live entities reached.
        let commands: [(String, Account.Command)] = (0..<60).map { index in
            let key = ["a", "b", "c"][index % 3]
            return (key, index % 4 == 3 ? .withdraw(index % 7) : .deposit(index % 5 + 1))
        }
        var live = Entities(behavior: Account.behavior, snapshotEvery: 4)
        var changelog: [(key: String, event: Account.Event)] = []
        var snapshotsAt: [Int: [String: EntitySnapshot<Int>]] = [0: [:]]
        var latest: [String: EntitySnapshot<Int>] = [:]
        for (key, command) in commands {
            guard case .accepted(let events, let state, let due) = live.handle(command, for: key) else { continue }
            for event in events { changelog.append((key, event)) }
            if due { latest[key] = EntitySnapshot(state: state, offset: Int64(changelog.count - 1)) }
            snapshotsAt[changelog.count] = latest
        }
        for (taken, snapshots) in snapshotsAt {
            var ledger = SnapshotLedger<String>(end: 0)
            for (offset, entry) in changelog.enumerated().prefix(taken) {
                ledger.committed(entry.key, at: Int64(offset))
            }
            for (key, snapshot) in snapshots { ledger.snapshotted(key, through: snapshot.offset) }
            var replay = EventSourcedReplay<String, Int, Account.Event>(
                initialState: 0, evolve: Account.behavior.evolve, snapshots: snapshots, from: ledger.replayFrom)
            for (offset, entry) in changelog.enumerated().dropFirst(Int(ledger.replayFrom)) {
                replay.apply(entry.event, of: entry.key, at: Int64(offset))
            }
            for key in ["a", "b", "c"] {
                #expect(replay.recovered[key]?.state == live.state(of: key), "snapshots taken at \(taken), key \(key)")
            }
        }
    }
}
