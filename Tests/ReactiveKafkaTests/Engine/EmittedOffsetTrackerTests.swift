import Testing

@testable import ReactiveKafka

/// What the sources emitted and what of it is committed, alone: the rules a graceful revoke
/// waits on, and what a plain source's auto-commit may store.
@Suite struct EmittedOffsetTrackerTests {
    typealias Tracker = EmittedOffsetTracker
    let p0 = TopicPartition("t", 0)
    let p1 = TopicPartition("t", 1)

    @Test func aRevokedPartitionIsOutstandingUntilItsHandedOutRecordsAreCommitted() {
        var t = Tracker(tracksHandedOut: true, storesEmitted: false)
        t.handedOut([p0: 100, p1: 50], to: .all)
        t.beginRevoke([p0])
        // The reader still holds its batch: how far it emitted is unknown.
        #expect(t.uncommitted(among: [p0]) == [p0])
        let wakes = t.readerReturned(.all)
        #expect(wakes)
        #expect(t.uncommitted(among: [p0]) == [p0])
        t.committed([p0: 99])
        #expect(t.uncommitted(among: [p0]) == [p0])
        t.committed([p0: 100])
        #expect(t.uncommitted(among: [p0]).isEmpty)
        // A kept partition is not the revoke's business.
        #expect(t.uncommitted(among: [p1]) == [p1])
    }

    @Test func aReaderThatDroppedRecordsOnlyNeedsWhatItEmittedCommitted() {
        var t = Tracker(tracksHandedOut: true, storesEmitted: false)
        t.handedOut([p0: 100], to: .all)
        t.beginRevoke([p0])
        let wakes = t.readerDropped(.all, firstUnemitted: [p0: 60], stillHolding: [])
        #expect(wakes)
        t.committed([p0: 59])
        #expect(t.uncommitted(among: [p0]) == [p0])
        t.committed([p0: 60])
        #expect(t.uncommitted(among: [p0]).isEmpty)
    }

    @Test func aDropOfAPartitionNotBeingRevokedIsNotRemembered() {
        var t = Tracker(tracksHandedOut: true, storesEmitted: false)
        t.handedOut([p0: 100, p1: 10], to: .all)
        t.beginRevoke([p1])
        _ = t.readerDropped(.all, firstUnemitted: [p0: 60], stillHolding: [p0])
        t.endRevoke([p1])
        t.beginRevoke([p0])
        _ = t.readerReturned(.all)
        t.committed([p0: 60])
        // The earlier drop of p0 (a rewind, not this revoke) does not lower what must be committed.
        #expect(t.uncommitted(among: [p0]) == [p0])
    }

    @Test func anEndedRevokeForgetsItsPartitionsAndMakesThemUncommittable() {
        var t = Tracker(tracksHandedOut: true, storesEmitted: false)
        t.handedOut([p0: 100], to: .all)
        t.beginRevoke([p0])
        #expect(t.committable(assigned: [p1]) == [p0, p1])
        t.endRevoke([p0])
        #expect(!t.isRevoking)
        #expect(t.committable(assigned: [p1]) == [p1])
        #expect(t.handedOut[p0] == nil && t.committedNext[p0] == nil)
        #expect(t.uncommitted(among: [p0]).isEmpty)
    }

    @Test func aReaderReturningWithoutARevokeDoesNotWakeTheEngine() {
        var t = Tracker(tracksHandedOut: true, storesEmitted: false)
        t.handedOut([p0: 10], to: .partition(p0))
        let wakes = t.readerReturned(.partition(p0))
        #expect(!wakes)
        #expect(t.holding.isEmpty)
    }

    @Test func onlyRecordsEmittedInFullAreStoredAndOnlyForAssignedPartitions() {
        var t = Tracker(tracksHandedOut: false, storesEmitted: true)
        t.handedOut([p0: 100, p1: 20], to: .all)
        // Taken, not yet emitted: nothing to store.
        #expect(t.takeOffsetsToStore(assigned: [p0, p1]).isEmpty)
        _ = t.readerReturned(.all)
        t.handedOut([p0: 150], to: .all)
        #expect(t.takeOffsetsToStore(assigned: [p0]) == [p0: 100])
        // Taken once: the next take stores only what was emitted since.
        #expect(t.takeOffsetsToStore(assigned: [p0, p1]).isEmpty)
        _ = t.readerReturned(.all)
        #expect(t.takeOffsetsToStore(assigned: [p0, p1]) == [p0: 150])
    }

    @Test func storingNeverGoesBackwardsAcrossReaders() {
        var t = Tracker(tracksHandedOut: false, storesEmitted: true)
        t.handedOut([p0: 100], to: .partition(p0))
        t.handedOut([p0: 80], to: .all)
        _ = t.readerReturned(.partition(p0))
        _ = t.readerReturned(.all)
        #expect(t.takeOffsetsToStore(assigned: [p0]) == [p0: 100])
    }

    @Test func nothingIsTrackedWhenNeitherGuaranteeIsOn() {
        var t = Tracker(tracksHandedOut: false, storesEmitted: false)
        t.handedOut([p0: 100], to: .all)
        #expect(t.handedOut.isEmpty && t.holding.isEmpty)
        _ = t.readerReturned(.all)
        #expect(t.takeOffsetsToStore(assigned: [p0]).isEmpty)
        let wakes = t.readerDropped(.all, firstUnemitted: [p0: 1], stillHolding: [])
        #expect(!wakes)
    }
}
