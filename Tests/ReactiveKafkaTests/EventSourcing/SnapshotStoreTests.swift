import Foundation
import Testing

@testable import ReactiveKafka

/// The snapshot file: a round trip, the newer snapshot winning, and files it must refuse.
@Suite struct SnapshotStoreTests {
    static func path(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString).sqlite").path
    }

    @Test func snapshotsAndTheReplayStartSurviveAReopen() async throws {
        let path = Self.path("snapshots")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = SnapshotStore(path: path, topic: "changelog")
        try await store.open()
        let row = SnapshotStore.Row(key: Data("a".utf8), state: Data("7".utf8), offset: 9)
        try await store.save([row], partition: 1, replayFrom: 4)
        // An older snapshot of the same key (a result handled late) does not replace it.
        try await store.save(
            [SnapshotStore.Row(key: Data("a".utf8), state: Data("3".utf8), offset: 5)], partition: 1, replayFrom: 6)
        await store.close()

        let reopened = SnapshotStore(path: path, topic: "changelog")
        try await reopened.open()
        let loaded = try await reopened.load(1)
        let empty = try await reopened.load(0)
        await reopened.close()
        #expect(loaded.rows.map { String(decoding: $0.state, as: UTF8.self) } == ["7"])
        #expect(loaded.rows.map(\.offset) == [9])
        #expect(loaded.replayFrom == 6)
        #expect(empty.rows.isEmpty && empty.replayFrom == nil)
    }

    @Test func aFileOfAnotherChangelogIsRefused() async throws {
        let path = Self.path("other")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = SnapshotStore(path: path, topic: "changelog-a")
        try await store.open()
        await store.close()
        let other = SnapshotStore(path: path, topic: "changelog-b")
        let error = await #expect(throws: EventSourcedError.self) { try await other.open() }
        #expect(error?.kind == .foreignStore)
    }

    @Test func aFileThatIsNotSQLiteIsACorruptStore() async throws {
        let path = Self.path("garbage")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(repeating: 0x42, count: 4096).write(to: URL(fileURLWithPath: path))
        let store = SnapshotStore(path: path, topic: "changelog")
        let error = await #expect(throws: EventSourcedError.self) { try await store.open() }
        #expect(error?.kind == .corruptStore)
    }
}
