import Testing

@testable import ReactiveKafka

@Suite struct CommitStateMachineTests {
    private let start = ContinuousClock.now
    private let p0 = TopicPartition("t", 0)
    private let p1 = TopicPartition("t", 1)
    private let p2 = TopicPartition("t", 2)
    private let retriableError = KafkaError(.commitFailed, "coordinator not available")
    private let fatalError = KafkaError(.commitFailed, "unknown member id")

    private func request(
        _ id: CommitStateMachine.RequestID,
        _ offsets: [TopicPartition: Int64],
        timeout: Duration = .seconds(10)
    ) -> CommitStateMachine.Request {
        .init(
            id: id,
            offsets: offsets.mapValues { CommitPosition(nextOffset: $0, metadata: nil) },
            deadline: start + timeout,
            started: start)
    }

    private func positions(_ offsets: [TopicPartition: Int64]) -> [TopicPartition: CommitPosition] {
        offsets.mapValues { CommitPosition(nextOffset: $0, metadata: nil) }
    }

    @Test func emptyMachineIsIdleAndSendsNothing() {
        var machine = CommitStateMachine()
        #expect(machine.isIdle)
        #expect(!machine.hasWork)
        #expect(machine.earliestDeadline == nil)
        let next = machine.nextSend(assigned: [p0])
        #expect(next.send == nil)
        #expect(next.notAssigned.isEmpty)
    }

    @Test func mergingKeepsTheHighestOffsetPerPartition() throws {
        var machine = CommitStateMachine()
        machine.enqueue(request(1, [p0: 10, p1: 5]))
        machine.enqueue(request(2, [p0: 7, p1: 9]))
        machine.enqueue(request(3, [p0: 12]))
        let send = try #require(machine.nextSend(assigned: [p0, p1]).send)
        #expect(send.offsets == positions([p0: 12, p1: 9]))
        #expect(
            machine.completed(sendID: send.sendID, error: nil, retriable: false, now: start) == .succeeded([1, 2, 3]))
        #expect(machine.isIdle)
    }

    @Test func mergingKeepsTheMetadataOfTheWinningOffset() throws {
        var machine = CommitStateMachine()
        machine.enqueue(
            .init(
                id: 1, offsets: [p0: CommitPosition(nextOffset: 5, metadata: "old")], deadline: start + .seconds(1),
                started: start))
        machine.enqueue(
            .init(
                id: 2, offsets: [p0: CommitPosition(nextOffset: 6, metadata: "new")], deadline: start + .seconds(1),
                started: start))
        let send = try #require(machine.nextSend(assigned: [p0]).send)
        #expect(send.offsets[p0] == CommitPosition(nextOffset: 6, metadata: "new"))
    }

    @Test func onlyOneSendIsInFlight() throws {
        var machine = CommitStateMachine()
        machine.enqueue(request(1, [p0: 1]))
        let first = try #require(machine.nextSend(assigned: [p0]).send)
        machine.enqueue(request(2, [p0: 2]))
        machine.enqueue(request(3, [p1: 3]))
        #expect(machine.nextSend(assigned: [p0, p1]).send == nil)
        #expect(machine.hasWork)

        #expect(machine.completed(sendID: first.sendID, error: nil, retriable: false, now: start) == .succeeded([1]))
        let second = try #require(machine.nextSend(assigned: [p0, p1]).send)
        #expect(second.sendID != first.sendID)
        #expect(second.offsets == positions([p0: 2, p1: 3]))
        #expect(
            machine.completed(sendID: second.sendID, error: nil, retriable: false, now: start) == .succeeded([2, 3]))
        #expect(machine.isIdle)
    }

    @Test func unassignedPartitionsAreNotSentAndTheirRequestIsToldSo() throws {
        var machine = CommitStateMachine()
        machine.enqueue(request(1, [p0: 10, p1: 20]))
        machine.enqueue(request(2, [p2: 30]))
        let next = machine.nextSend(assigned: [p0])
        #expect(next.notAssigned.map(\.0) == [2])
        #expect(next.notAssigned.first?.1 == [p2])
        let send = try #require(next.send)
        #expect(send.offsets == positions([p0: 10]))
        // Request 1 is acknowledged for p0 only: p1 is reported as not committed.
        #expect(
            machine.completed(sendID: send.sendID, error: nil, retriable: false, now: start)
                == .succeeded([1], notAssigned: [1: [p1]]))
    }

    @Test func requestsOfOnlyUnassignedPartitionsAreRefusedWithoutASend() {
        var machine = CommitStateMachine()
        machine.enqueue(request(1, [p1: 10]))
        machine.enqueue(request(2, [p2: 30]))
        let next = machine.nextSend(assigned: [p0])
        #expect(next.send == nil)
        #expect(next.notAssigned.map(\.0) == [1, 2])
        #expect(next.notAssigned.map(\.1) == [[p1], [p2]])
        #expect(machine.isIdle)
        // Nothing in flight: the next request is sent at once.
        machine.enqueue(request(3, [p0: 1]))
        #expect(machine.nextSend(assigned: [p0]).send != nil)
    }

    @Test func aRequestRetriedAfterARefusalRemembersItAndLosesPartitionsThatMovedAway() throws {
        var machine = CommitStateMachine()
        machine.enqueue(request(1, [p0: 10, p1: 4]))
        let first = try #require(machine.nextSend(assigned: [p0, p1]).send)
        #expect(
            machine.completed(
                sendID: first.sendID, error: retriableError, retriable: true, now: start + .milliseconds(10))
                == .retrying)
        // The rebalance took p1 away: the retry sends p0 only, and the request learns p1 was not committed.
        let retry = try #require(machine.nextSend(assigned: [p0]).send)
        #expect(retry.offsets == positions([p0: 10]))
        #expect(
            machine.completed(
                sendID: retry.sendID, error: retriableError, retriable: true, now: start + .milliseconds(20))
                == .retrying)
        let expired = machine.expire(now: start + .seconds(3600))
        #expect(expired.map(\.id) == [1])
        #expect(expired.first?.lastRefusal == retriableError)
        #expect(expired.first?.notAssigned == [p1])
    }

    @Test func retriableErrorRequeuesAndTheNextSendIncludesThem() throws {
        var machine = CommitStateMachine()
        machine.enqueue(request(1, [p0: 10]))
        let first = try #require(machine.nextSend(assigned: [p0, p1]).send)
        machine.enqueue(request(2, [p1: 4]))
        #expect(
            machine.completed(sendID: first.sendID, error: retriableError, retriable: true, now: start + .seconds(1))
                == .retrying)
        #expect(machine.hasWork)

        let retry = try #require(machine.nextSend(assigned: [p0, p1]).send)
        #expect(retry.offsets == positions([p0: 10, p1: 4]))
        #expect(
            machine.completed(sendID: retry.sendID, error: nil, retriable: false, now: start + .seconds(2))
                == .succeeded([1, 2]))
    }

    @Test func retriedOffsetsDoNotOverwriteNewerOnes() throws {
        var machine = CommitStateMachine()
        machine.enqueue(request(1, [p0: 10]))
        let first = try #require(machine.nextSend(assigned: [p0]).send)
        machine.enqueue(request(2, [p0: 20]))
        #expect(
            machine.completed(sendID: first.sendID, error: retriableError, retriable: true, now: start) == .retrying)
        let retry = try #require(machine.nextSend(assigned: [p0]).send)
        #expect(retry.offsets == positions([p0: 20]))
    }

    @Test func retriableErrorPastTheDeadlineFails() throws {
        var machine = CommitStateMachine()
        machine.enqueue(request(1, [p0: 10], timeout: .seconds(1)))
        machine.enqueue(request(2, [p1: 10], timeout: .seconds(5)))
        let send = try #require(machine.nextSend(assigned: [p0, p1]).send)
        let outcome = machine.completed(
            sendID: send.sendID, error: retriableError, retriable: true, now: start + .seconds(2))
        #expect(outcome == .failed([1], retriableError))
        // The request still within its deadline is retried.
        let retry = try #require(machine.nextSend(assigned: [p0, p1]).send)
        #expect(retry.offsets == positions([p1: 10]))
    }

    @Test func nonRetriableErrorFailsEveryMergedRequest() throws {
        var machine = CommitStateMachine()
        machine.enqueue(request(1, [p0: 10]))
        machine.enqueue(request(2, [p1: 10]))
        let send = try #require(machine.nextSend(assigned: [p0, p1]).send)
        #expect(
            machine.completed(sendID: send.sendID, error: fatalError, retriable: false, now: start)
                == .failed([1, 2], fatalError))
        #expect(machine.isIdle)
        #expect(machine.nextSend(assigned: [p0, p1]).send == nil)
    }

    @Test func expireReturnsWaitingAndInFlightRequestsPastTheirDeadline() throws {
        var machine = CommitStateMachine()
        machine.enqueue(request(1, [p0: 1], timeout: .seconds(1)))
        machine.enqueue(request(2, [p1: 1], timeout: .seconds(10)))
        let send = try #require(machine.nextSend(assigned: [p0, p1]).send)
        machine.enqueue(request(3, [p0: 2], timeout: .seconds(1)))
        machine.enqueue(request(4, [p1: 2], timeout: .seconds(10)))
        #expect(machine.earliestDeadline == start + .seconds(1))

        #expect(machine.expire(now: start + .milliseconds(500)).isEmpty)
        let expired = machine.expire(now: start + .seconds(2))
        #expect(Set(expired.map(\.id)) == [1, 3])
        #expect(machine.earliestDeadline == start + .seconds(10))

        // The late answer completes only what was not expired.
        #expect(
            machine.completed(sendID: send.sendID, error: nil, retriable: false, now: start + .seconds(3))
                == .succeeded([2]))
        let next = try #require(machine.nextSend(assigned: [p0, p1]).send)
        #expect(next.offsets == positions([p1: 2]))
    }

    @Test func lateAnswerOfAFullyExpiredSendResurrectsNothing() throws {
        var machine = CommitStateMachine()
        machine.enqueue(request(1, [p0: 1], timeout: .seconds(1)))
        let send = try #require(machine.nextSend(assigned: [p0]).send)
        #expect(machine.expire(now: start + .seconds(2)).map(\.id) == [1])
        // Still one send in flight, so nothing new goes out until librdkafka answers it.
        machine.enqueue(request(2, [p0: 5]))
        #expect(machine.nextSend(assigned: [p0]).send == nil)

        #expect(
            machine.completed(sendID: send.sendID, error: retriableError, retriable: true, now: start + .seconds(3))
                == .retrying)
        let next = try #require(machine.nextSend(assigned: [p0]).send)
        #expect(next.offsets == positions([p0: 5]))
        #expect(
            machine.completed(sendID: next.sendID, error: nil, retriable: false, now: start + .seconds(3))
                == .succeeded([2]))
        #expect(machine.isIdle)
    }

    @Test func answerForAnUnknownSendIsIgnored() throws {
        var machine = CommitStateMachine()
        machine.enqueue(request(1, [p0: 1]))
        let send = try #require(machine.nextSend(assigned: [p0]).send)
        #expect(
            machine.completed(sendID: send.sendID + 100, error: fatalError, retriable: false, now: start)
                == .succeeded([]))
        #expect(machine.hasWork)
        #expect(machine.completed(sendID: send.sendID, error: nil, retriable: false, now: start) == .succeeded([1]))
    }

    @Test func drainAllReturnsEverythingOutstanding() throws {
        var machine = CommitStateMachine()
        machine.enqueue(request(1, [p0: 1]))
        let send = try #require(machine.nextSend(assigned: [p0]).send)
        machine.enqueue(request(2, [p0: 2]))
        machine.enqueue(request(3, [p1: 2]))
        #expect(Set(machine.drainAll()) == [1, 2, 3])
        #expect(machine.isIdle)
        #expect(machine.completed(sendID: send.sendID, error: nil, retriable: false, now: start) == .succeeded([]))
        #expect(machine.drainAll().isEmpty)
    }
}
