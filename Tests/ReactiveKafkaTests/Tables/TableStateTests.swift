import Testing

@testable import ReactiveKafka

/// The pure state behind tables: rows, restore progress, and a reader's conflated changes.
@Suite struct TableStateTests {
    typealias Rows = TableRows<String, Int>

    static func entry(_ partition: Int32, _ key: String, _ value: Int?) -> TableEntry<String, Int> {
        TableEntry(
            partition: partition, key: key, value: value, keyBytes: KafkaBytes(key),
            valueBytes: value.map { KafkaBytes("\($0)") })
    }

    @Test func rowsApplyUpsertsAndTombstonesAndReportEachRealChange() {
        var rows = Rows(tracksPartitions: false)
        rows.assign(0, rows: [], position: nil)
        let changes = rows.apply(
            TableBatch(
                entries: [
                    Self.entry(0, "a", 1), Self.entry(0, "a", 2), Self.entry(0, "b", nil), Self.entry(0, "c", 3),
                    Self.entry(0, "c", nil),
                ], positions: [0: 5]))
        #expect(rows.values == ["a": 2])
        #expect(rows.positions == [0: 5])
        // Deleting the absent "b" changed nothing.
        #expect(
            changes.map { "\($0.key):\($0.oldValue.map(String.init) ?? "-")>\($0.newValue.map(String.init) ?? "-")" }
                == ["a:->1", "a:1>2", "c:->3", "c:3>-"])
    }

    @Test func rowsIgnoreWritesToUnassignedPartitionsAndRevokeDropsTheirRows() {
        var rows = Rows(tracksPartitions: true)
        rows.assign(0, rows: [(key: "kept", value: 9)], position: 4)
        rows.assign(1, rows: [], position: nil)
        _ = rows.apply(TableBatch(entries: [Self.entry(1, "x", 1), Self.entry(2, "y", 2)], positions: [1: 1, 2: 1]))
        #expect(rows.values == ["kept": 9, "x": 1])
        #expect(rows.positions == [0: 4, 1: 1])
        rows.revoke([1])
        #expect(rows.values == ["kept": 9])
        #expect(rows.positions == [0: 4])
        let late = rows.apply(TableBatch(entries: [Self.entry(1, "x", 5)], positions: [1: 2]))
        #expect(late.isEmpty)
        #expect(
            rows.writable(
                TableBatch(entries: [Self.entry(0, "a", 1), Self.entry(1, "b", 1)], positions: [0: 5, 1: 3])
            ).entries.map(\.key) == ["a"])
    }

    @Test func positionsNeverGoBack() {
        var rows = Rows(tracksPartitions: false)
        rows.assign(0, rows: [], position: 10)
        _ = rows.apply(TableBatch(entries: [], positions: [0: 7]))
        #expect(rows.positions == [0: 10])
    }

    @Test func theRestoreCompletesWhenEveryAssignedPartitionReachesItsEnd() {
        var restore = TableRestore()
        let step1 = restore.positioned(start: [0: 0, 1: 5, 2: 3], end: [0: 10, 1: 5, 2: 8])
        #expect(!step1)
        let step2 = restore.reached([0: 10])
        #expect(!step2)
        let step3 = restore.reached([2: 7])
        #expect(!step3)
        let step4 = restore.reached([2: 8])
        #expect(step4)
        #expect(restore.isComplete)
        let step5 = restore.reached([0: 11])
        #expect(!step5)
    }

    @Test func theRestoreWaitsForEveryAssignedPartitionToBePositioned() {
        var restore = TableRestore()
        let step6 = restore.assigned([0, 1])
        #expect(!step6)
        let step7 = restore.positioned(start: [0: 0], end: [0: 0])
        #expect(!step7)
        let step8 = restore.positioned(start: [1: 2], end: [1: 2])
        #expect(step8)
    }

    @Test func anEmptyFirstAssignmentOrARevokeCanCompleteTheRestore() {
        var empty = TableRestore()
        let step9 = empty.assigned([])
        #expect(step9)
        var revoked = TableRestore()
        let step10 = revoked.assigned([0, 1])
        #expect(!step10)
        let step11 = revoked.positioned(start: [0: 0, 1: 0], end: [0: 3, 1: 4])
        #expect(!step11)
        let step12 = revoked.reached([0: 3])
        #expect(!step12)
        let step13 = revoked.revoked([1])
        #expect(step13)
    }

    @Test func aReadersPendingChangesAreConflatedByKeyInFirstChangeOrder() {
        var buffer = ChangeBufferState<String, Int>()
        buffer.offer([
            TableChange(key: "a", oldValue: nil, newValue: 1), TableChange(key: "b", oldValue: 7, newValue: 8),
        ])
        buffer.offer([
            TableChange(key: "a", oldValue: 1, newValue: 2), TableChange(key: "c", oldValue: nil, newValue: 3),
            TableChange(key: "b", oldValue: 8, newValue: nil),
        ])
        buffer.finish(nil)
        buffer.offer([TableChange(key: "late", oldValue: nil, newValue: 0)])
        var taken: [String] = []
        while let change = buffer.take() {
            taken.append(
                "\(change.key):\(change.oldValue.map(String.init) ?? "-")>\(change.newValue.map(String.init) ?? "-")")
        }
        #expect(taken == ["a:->2", "b:7>-", "c:->3"])
        #expect(buffer.end != nil)
    }

    @Test func aReportedEndCompletesAPartitionOnceTheRecordsReadBeforeItAreApplied() {
        var restore = TableRestore()
        // Records at 0…2 and a transaction marker at 3: no record reaches the end offset 4.
        let positioned = restore.positioned(start: [0: 0, 1: 0], end: [0: 4, 1: 4])
        #expect(!positioned)
        let endBeforeApplied = restore.ended(0, at: 4, afterLastRecord: 3)
        #expect(!endBeforeApplied)
        let applied = restore.reached([0: 3])
        #expect(!applied)
        // An end older than the target says nothing.
        let staleEnd = restore.ended(1, at: 2, afterLastRecord: 2)
        #expect(!staleEnd)
        // Only markers (or nothing read) before the end: restored at once.
        let onlyMarkers = restore.ended(1, at: 4, afterLastRecord: nil)
        #expect(onlyMarkers)
    }
}
