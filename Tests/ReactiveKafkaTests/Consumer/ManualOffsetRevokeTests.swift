import Foundation
import ReactiveKafka
import ReactiveKafkaTestKit
import Testing

/// A partitioned source with offsets the application keeps (`getOffsetsOnAssign`, and
/// partition-aligned tables, which restore from their store) seeks each assigned partition once its
/// offsets are looked up. A rebalance can take a partition away meanwhile; librdkafka refuses to seek
/// a partition that is not assigned (`_STATE`), which failed the whole source (seen as a partition-aligned
/// table failing under ThreadSanitizer's slowness). Such a partition is its next owner's to read: only
/// the partitions still assigned are sought. The look-up returns as soon as the revoke happened: the
/// partition this member gets back may not be fetching yet, and its seek waits for that.
@Suite(.serialized) struct ManualOffsetRevokeTests {
    @Test func aPartitionRevokedWhileItsOffsetsAreLookedUpIsLeftToItsNextOwner() async throws {
        let kafka = try await SourceKindsTests.seeded("looked-up", partitions: 2, records: 200)
        let group = "g-looked-up"
        let revoked = Locked(false)
        let calls = Locked(0)
        let first = Consumer.plainPartitionedManualOffsetSource(
            SourceKindsTests.settings(kafka, group: group), subscription: .topics("looked-up"),
            getOffsetsOnAssign: { partitions in
                // The first look-up outlasts a rebalance that takes a partition away.
                if calls.withLock({
                    $0 += 1
                    return $0
                }) == 1 {
                    let deadline = ContinuousClock.now + .seconds(30)
                    while !revoked.withLock({ $0 }), ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(20))
                    }
                }
                return Dictionary(uniqueKeysWithValues: partitions.map { ($0, Int64(10)) })
            },
            onRevoke: { _ in revoked.withLock { $0 = true } })
        let firstRead = Locked(0)
        let firstStream = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for try await assigned in first {
                    let subStream = assigned.source
                    group.addTask { for try await _ in subStream { firstRead.withLock { $0 += 1 } } }
                }
                try await group.waitForAll()
            }
        }
        #expect(try await Eventually.within(.seconds(30)) { calls.withLock { $0 } >= 1 })
        // A second member joins: the first gives up its partitions and gets one back.
        let second = Consumer.plainSource(
            SourceKindsTests.settings(kafka, group: group), subscription: .topics("looked-up"))
        let secondRead = Locked(0)
        let secondStream = Task { for try await _ in second { secondRead.withLock { $0 += 1 } } }
        #expect(try await Eventually.within(.seconds(30)) { revoked.withLock { $0 } })
        // Both members read their partition: the first from its looked-up offset 10.
        let bothRead = try await Eventually.within(.seconds(30)) {
            firstRead.withLock { $0 } >= 90 && secondRead.withLock { $0 } >= 1
        }
        #expect(bothRead, "first read \(firstRead.withLock { $0 }), second \(secondRead.withLock { $0 })")
        await second.materialized.shutdown()
        _ = await secondStream.result
        try await first.materialized.drainAndShutdown(firstStream)
    }
}
