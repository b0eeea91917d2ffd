import ReactiveKafka
import Testing

/// Readings in, snapshots out: lag per partition and group, windows and groups coming and going.
@Suite struct LagTrackerTests {
    let t0 = ContinuousClock.now
    func at(_ seconds: Double) -> ContinuousClock.Instant { t0 + .milliseconds(Int64(seconds * 1000)) }
    let p0 = TopicPartition("orders", 0), p1 = TopicPartition("orders", 1), q0 = TopicPartition("audit", 0)

    func reading(
        _ groups: [String: [TopicPartition: Int64]], latest: [TopicPartition: Int64],
        earliest: [TopicPartition: Int64] = [:]
    ) -> LagReading {
        LagReading(
            groups: groups.map { LagReading.Group(name: $0.key, committed: $0.value) }, earliest: earliest,
            latest: latest)
    }

    @Test func lagPerPartitionAndItsSumsAndMaxima() throws {
        var tracker = LagTracker()
        let snapshot = tracker.update(
            reading(["billing": [p0: 60, p1: 95, q0: 7]], latest: [p0: 100, p1: 100, q0: 10], earliest: [p0: 0]),
            at: at(0))
        let billing = try #require(snapshot.group("billing"))
        #expect(billing.partitions.map(\.topicPartition) == [q0, p0, p1], "in topic and partition order")
        #expect(billing.partitions.map(\.lag) == [3, 40, 5])
        #expect(billing.sumLag == 48)
        #expect(billing.maxLag == 40)
        #expect(billing.topicSumLag == ["orders": 45, "audit": 3])
        #expect(billing.partitions.map(\.committedOffset) == [7, 60, 95])
        #expect(snapshot.partitions.map(\.topicPartition) == [q0, p0, p1])
        #expect(snapshot.partitions.first { $0.topicPartition == p0 }?.earliest == 0)
        #expect(
            snapshot.partitions.first { $0.topicPartition == p1 }?.earliest == nil,
            "a start offset that was not read is unknown")
        // One sample each so far: lag in time not known yet, except where there is none.
        #expect(billing.maxLagSeconds == nil)
        #expect(billing.partitions.allSatisfy { $0.timeLag == .unknown })
    }

    @Test func theLagInSecondsComesFromEachPartitionsWindow() throws {
        var tracker = LagTracker()
        _ = tracker.update(reading(["g": [p0: 100]], latest: [p0: 100]), at: at(0))
        _ = tracker.update(reading(["g": [p0: 100]], latest: [p0: 100]), at: at(5))
        // 40 records arrive; the group stays at 100, which was the end until 5 s.
        var snapshot = tracker.update(reading(["g": [p0: 100]], latest: [p0: 140]), at: at(10))
        #expect(snapshot.group("g")?.partitions.first?.timeLag == .interpolated(seconds: 5))
        snapshot = tracker.update(reading(["g": [p0: 100]], latest: [p0: 140]), at: at(20))
        #expect(snapshot.group("g")?.maxLagSeconds == 15, "grows while the group stands still")
        #expect(snapshot.group("g")?.sumLag == 40)
        snapshot = tracker.update(reading(["g": [p0: 140]], latest: [p0: 140]), at: at(21))
        #expect(snapshot.group("g")?.partitions.first?.timeLag == .caughtUp)
        #expect(snapshot.group("g")?.maxLagSeconds == 0)
        #expect(snapshot.group("g")?.sumLag == 0)
    }

    @Test func groupsShareAPartitionsWindow() throws {
        var tracker = LagTracker()
        _ = tracker.update(reading(["a": [p0: 0], "b": [p0: 0]], latest: [p0: 0]), at: at(0))
        let snapshot = tracker.update(reading(["a": [p0: 50], "b": [p0: 0]], latest: [p0: 100]), at: at(10))
        #expect(snapshot.group("a")?.partitions.first?.timeLag == .interpolated(seconds: 5))
        #expect(snapshot.group("b")?.partitions.first?.timeLag == .interpolated(seconds: 10))
        #expect(tracker.windows.count == 1)
    }

    @Test func aGroupThatDisappearsLeavesTheSnapshot() {
        var tracker = LagTracker()
        var snapshot = tracker.update(reading(["a": [p0: 1], "b": [p0: 2]], latest: [p0: 10]), at: at(0))
        #expect(snapshot.groups.map(\.name) == ["a", "b"])
        snapshot = tracker.update(reading(["a": [p0: 1]], latest: [p0: 10]), at: at(1))
        #expect(snapshot.groups.map(\.name) == ["a"])
        #expect(snapshot.group("b") == nil)
    }

    @Test func aGroupWithNoReadablePartitionLeavesTheSnapshot() {
        var tracker = LagTracker()
        // Its only partition's end offset could not be read this round.
        let snapshot = tracker.update(reading(["a": [p0: 1], "b": [p1: 2]], latest: [p0: 10]), at: at(0))
        #expect(snapshot.groups.map(\.name) == ["a"])
        #expect(snapshot.partitions.map(\.topicPartition) == [p0])
    }

    @Test func aPartitionMissingFromAReadingLosesItsWindow() {
        var tracker = LagTracker(windowSize: 5)
        _ = tracker.update(reading(["g": [p0: 0, p1: 0]], latest: [p0: 10, p1: 10]), at: at(0))
        _ = tracker.update(reading(["g": [p0: 0, p1: 0]], latest: [p0: 20, p1: 20]), at: at(1))
        _ = tracker.update(reading(["g": [p0: 0]], latest: [p0: 30]), at: at(2))
        #expect(Set(tracker.windows.keys) == [p0])
        #expect(tracker.windows[p0]?.samples.count == 3)
        #expect(tracker.windows[p0]?.capacity == 5)
        // Back again: a fresh window, one sample, no estimate yet.
        let snapshot = tracker.update(reading(["g": [p0: 0, p1: 0]], latest: [p0: 30, p1: 30]), at: at(3))
        #expect(tracker.windows[p1]?.samples.count == 1)
        #expect(snapshot.group("g")?.partitions.first { $0.topicPartition == p1 }?.timeLag == .unknown)
    }

    @Test func aCommitPastTheEndIsNoLag() {
        var tracker = LagTracker()
        let snapshot = tracker.update(reading(["g": [p0: 12]], latest: [p0: 10]), at: at(0))
        #expect(snapshot.group("g")?.sumLag == 0)
        #expect(snapshot.group("g")?.partitions.first?.timeLag == .caughtUp)
    }

    @Test func membersAndGroupKindAreCarried() {
        var tracker = LagTracker()
        let member = GroupMember(consumerId: "c-1", clientId: "rkafka", host: "/10.0.0.1")
        let snapshot = tracker.update(
            LagReading(
                groups: [
                    LagReading.Group(
                        name: "g", isSimpleConsumer: false, committed: [p0: 1, p1: 1], members: [p0: member])
                ],
                earliest: [:], latest: [p0: 5, p1: 5]),
            at: at(0))
        #expect(snapshot.group("g")?.isSimpleConsumer == false)
        #expect(snapshot.group("g")?.partitions.map(\.member) == [member, nil])
    }
}
