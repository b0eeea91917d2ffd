import Testing

@testable import ReactiveKafka

/// ``ConsumerHealthStateMachine``: each state, what leads to it, and which states are final.
struct ConsumerHealthStateMachineTests {
    typealias Observation = ConsumerHealthStateMachine.Observation
    let t0 = ContinuousClock.now

    func look(
        failure: KafkaError? = nil, stopped: Bool = false, joined: Bool = true, rejoining: Bool = false,
        waiting: Bool = false, taken: UInt64 = 0
    ) -> Observation {
        Observation(
            failure: failure, stopped: stopped, joined: joined, rejoining: rejoining, recordsWaiting: waiting,
            batchesTaken: taken)
    }

    @Test func startsStartingAndConsumesOnceJoined() {
        var machine = ConsumerHealthStateMachine(stallThreshold: .seconds(5))
        #expect(machine.health == .starting)
        #expect(machine.observe(look(joined: false), now: t0) == nil, "no change while not joined")
        #expect(
            machine.observe(look(joined: false, rejoining: true), now: t0) == nil, "the first join is still starting")
        #expect(machine.observe(look(), now: t0) == .consuming)
        #expect(machine.observe(look(), now: t0 + .seconds(1)) == nil, "no repeated change")
    }

    @Test func aRejoinIsRebalancingUntilTheCallback() {
        var machine = ConsumerHealthStateMachine(stallThreshold: .seconds(5))
        _ = machine.observe(look(), now: t0)
        #expect(machine.observe(look(rejoining: true), now: t0 + .seconds(1)) == .rebalancing)
        #expect(machine.observe(look(), now: t0 + .seconds(2)) == .consuming)
    }

    @Test func recordsWaitingWithoutProgressPastTheThresholdIsStalledAndProgressEndsIt() {
        var machine = ConsumerHealthStateMachine(stallThreshold: .seconds(5))
        _ = machine.observe(look(taken: 1), now: t0)
        #expect(machine.observe(look(waiting: true, taken: 1), now: t0 + .seconds(1)) == nil)
        #expect(
            machine.observe(look(waiting: true, taken: 1), now: t0 + .seconds(5)) == nil,
            "4 s of waiting is under the threshold")
        #expect(machine.observe(look(waiting: true, taken: 1), now: t0 + .seconds(6)) == .stalled)
        #expect(machine.health.isLive == false)
        #expect(
            machine.observe(look(waiting: true, taken: 2), now: t0 + .seconds(7)) == .consuming,
            "a batch taken is progress")
        #expect(
            machine.observe(look(waiting: true, taken: 2), now: t0 + .seconds(11)) == nil,
            "the wait restarts at the progress")
        #expect(machine.observe(look(waiting: true, taken: 2), now: t0 + .seconds(12)) == .stalled)
    }

    @Test func noRecordsWaitingIsNeverStalled() {
        var machine = ConsumerHealthStateMachine(stallThreshold: .seconds(1))
        _ = machine.observe(look(), now: t0)
        #expect(machine.observe(look(), now: t0 + .seconds(60)) == nil, "an idle topic is healthy")
        #expect(
            machine.observe(look(waiting: true), now: t0 + .seconds(61)) == nil, "the wait starts when records arrive")
        #expect(machine.observe(look(waiting: true), now: t0 + .seconds(62)) == .stalled)
        #expect(machine.observe(look(waiting: false), now: t0 + .seconds(63)) == .consuming)
    }

    @Test func failedIsFinalAndWinsOverEverything() {
        var machine = ConsumerHealthStateMachine(stallThreshold: .seconds(1))
        _ = machine.observe(look(), now: t0)
        let error = KafkaError(.brokerUnreachable, "no broker")
        #expect(
            machine.observe(look(failure: error, stopped: true, rejoining: true, waiting: true), now: t0)
                == .failed(error))
        #expect(machine.health.isLive == false && machine.health.isReady == false)
        #expect(machine.observe(look(), now: t0 + .seconds(1)) == nil)
        #expect(machine.health == .failed(error))
    }

    @Test func stoppedIsFinalExceptForAFailure() {
        var machine = ConsumerHealthStateMachine(stallThreshold: .seconds(1))
        _ = machine.observe(look(), now: t0)
        #expect(machine.observe(look(stopped: true), now: t0) == .stopped)
        #expect(machine.health.isLive && !machine.health.isReady)
        #expect(machine.observe(look(), now: t0 + .seconds(1)) == nil, "a stopped consumer does not come back")
        let error = KafkaError(.fatal, "late failure")
        #expect(machine.observe(look(failure: error, stopped: true), now: t0 + .seconds(2)) == .failed(error))
    }
}
