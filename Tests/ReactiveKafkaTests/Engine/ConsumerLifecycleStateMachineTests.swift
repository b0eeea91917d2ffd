import Testing

@testable import ReactiveKafka

/// The consumer's lifecycle alone: who holds it, and what each ending does.
@Suite struct ConsumerLifecycleStateMachineTests {
    typealias Machine = ConsumerLifecycleStateMachine
    let t0 = ContinuousClock.now
    let grace = Duration.seconds(20)

    final class Committer {}

    @Test func theLastLeaseEndingWhileRunningCompletesTheSourcesAndClosesAtOnce() {
        var m = Machine(endsWithItsSources: true)
        do {
            let taken = m.leaseTaken()
            #expect(taken)
        }
        do {
            let taken = m.leaseTaken()
            #expect(taken)
        }
        do {
            let action = m.leaseReleased(now: t0, committerGrace: grace)
            #expect(action == .none)
        }
        #expect(m.phase == .running)
        do {
            let action = m.leaseReleased(now: t0, committerGrace: grace)
            #expect(action == .completeSourcesAndClose)
        }
        #expect(m.phase == .closing)
        m.closed()
        #expect(m.phase == .closed)
    }

    @Test func anEndedStreamWaitsForItsCommittersToFlushThenCloses() {
        var m = Machine(endsWithItsSources: true)
        let committer = ObjectIdentifier(Committer())
        _ = m.leaseTaken()
        m.committerAttached(committer)
        do {
            let action = m.leaseReleased(now: t0, committerGrace: grace)
            #expect(action == .completeSources)
        }
        #expect(m.phase == .stopped)
        do {
            let action = m.tick(now: t0 + .seconds(1))
            #expect(action == .none)
        }
        do {
            let action = m.committerDetached(committer)
            #expect(action == .close)
        }
        #expect(m.phase == .closing)
    }

    @Test func aCommitterThatNeverFlushesHoldsTheConsumerOnlyUntilTheGraceEnds() {
        var m = Machine(endsWithItsSources: true)
        _ = m.leaseTaken()
        m.committerAttached(ObjectIdentifier(Committer()))
        _ = m.leaseReleased(now: t0, committerGrace: grace)
        do {
            let action = m.tick(now: t0 + grace - .milliseconds(1))
            #expect(action == .none)
        }
        do {
            let action = m.tick(now: t0 + grace)
            #expect(action == .close)
        }
    }

    @Test func stopKeepsTheConsumerForCommitsInFlightUntilShutdown() {
        var m = Machine(endsWithItsSources: true)
        let committer = ObjectIdentifier(Committer())
        _ = m.leaseTaken()
        m.committerAttached(committer)
        do {
            let action = m.stop(now: t0, closeAfter: .seconds(30))
            #expect(action == .completeSources)
        }
        #expect(m.phase == .stopped)
        // The stream completes and its committer flushes; records still held downstream may be
        // committed by hand: the consumer stays until shutdown or the stop timeout.
        do {
            let action = m.leaseReleased(now: t0, committerGrace: grace)
            #expect(action == .none)
        }
        do {
            let action = m.committerDetached(committer)
            #expect(action == .none)
        }
        #expect(m.phase == .stopped)
        do {
            let action = m.shutdown()
            #expect(action == .close)
        }
    }

    @Test func aStoppedConsumerThatIsStillHeldClosesAtTheStopTimeout() {
        var m = Machine(endsWithItsSources: true)
        _ = m.leaseTaken()
        _ = m.stop(now: t0, closeAfter: .seconds(30))
        do {
            let action = m.tick(now: t0 + .seconds(29))
            #expect(action == .none)
        }
        do {
            let action = m.tick(now: t0 + .seconds(30))
            #expect(action == .close)
        }
    }

    @Test func aDrainHasNoStopTimeout() {
        var m = Machine(endsWithItsSources: true)
        _ = m.leaseTaken()
        _ = m.stop(now: t0, closeAfter: nil)
        do {
            let action = m.leaseReleased(now: t0, committerGrace: grace)
            #expect(action == .none)
        }
        do {
            let action = m.tick(now: t0 + .seconds(3600))
            #expect(action == .none)
        }
        do {
            let action = m.shutdown()
            #expect(action == .close)
        }
    }

    @Test func aDrainAfterAPlainStopTakesTheStopTimerOver() {
        var m = Machine(endsWithItsSources: true)
        _ = m.leaseTaken()
        _ = m.stop(now: t0, closeAfter: .seconds(30))
        do {
            let action = m.stop(now: t0, closeAfter: nil)
            #expect(action == .none)
        }
        do {
            let action = m.tick(now: t0 + .seconds(31))
            #expect(action == .none)
        }
    }

    @Test func shutdownClosesWhateverHoldsTheConsumer() {
        var running = Machine(endsWithItsSources: true)
        _ = running.leaseTaken()
        running.committerAttached(ObjectIdentifier(Committer()))
        do {
            let action = running.shutdown()
            #expect(action == .completeSourcesAndClose)
        }
        do {
            let action = running.shutdown()
            #expect(action == .none)
        }

        var stopped = Machine(endsWithItsSources: true)
        _ = stopped.leaseTaken()
        _ = stopped.stop(now: t0, closeAfter: nil)
        do {
            let action = stopped.shutdown()
            #expect(action == .close)
        }
    }

    @Test func aClosingConsumerRefusesNewLeasesAndCommitters() {
        var m = Machine(endsWithItsSources: true)
        _ = m.shutdown()
        do {
            let taken = m.leaseTaken()
            #expect(!taken)
        }
        m.committerAttached(ObjectIdentifier(Committer()))
        #expect(m.committers.isEmpty)
        #expect(m.isEnding)
    }

    @Test func aSharedConsumerOutlivesItsSourcesUntilItsOwnerShutsItDown() {
        var m = Machine(endsWithItsSources: false)
        _ = m.leaseTaken()
        do {
            let action = m.leaseReleased(now: t0, committerGrace: grace)
            #expect(action == .none)
        }
        #expect(m.phase == .running)
        do {
            let action = m.tick(now: t0 + .seconds(3600))
            #expect(action == .none)
        }
        do {
            let action = m.shutdown()
            #expect(action == .completeSourcesAndClose)
        }
    }

    @Test func aConsumerNeverLeasedDoesNotCloseWhenACommitterDetaches() {
        var m = Machine(endsWithItsSources: true)
        let committer = ObjectIdentifier(Committer())
        m.committerAttached(committer)
        _ = m.stop(now: t0, closeAfter: nil)
        do {
            let action = m.committerDetached(committer)
            #expect(action == .none)
        }
        #expect(m.phase == .stopped)
    }

    @Test func anEndedStreamWaitsForEmittedOffsetsStillAliveDownstream() {
        var m = Machine(endsWithItsSources: true)
        _ = m.leaseTaken()
        do {
            let action = m.leaseReleased(now: t0, committerGrace: grace, offsetsOutstanding: true)
            #expect(action == .completeSources)
        }
        #expect(m.phase == .stopped)
        // A committer that attaches late (the offsets were in a flow) and flushes, while offsets are still alive.
        let committer = ObjectIdentifier(Committer())
        m.committerAttached(committer)
        do {
            let action = m.committerDetached(committer, offsetsOutstanding: true)
            #expect(action == .none)
        }
        do {
            let action = m.emittedOffsetsReleased()
            #expect(action == .close)
        }
        #expect(m.phase == .closing)
    }

    @Test func releasedOffsetsDoNotCloseWhileACommitterStillHoldsTheConsumer() {
        var m = Machine(endsWithItsSources: true)
        _ = m.leaseTaken()
        let committer = ObjectIdentifier(Committer())
        m.committerAttached(committer)
        _ = m.leaseReleased(now: t0, committerGrace: grace, offsetsOutstanding: true)
        do {
            let action = m.emittedOffsetsReleased()
            #expect(action == .none)
        }
        do {
            let action = m.committerDetached(committer, offsetsOutstanding: false)
            #expect(action == .close)
        }
    }

    @Test func offsetsStillAliveHoldTheConsumerOnlyUntilTheGraceEnds() {
        var m = Machine(endsWithItsSources: true)
        _ = m.leaseTaken()
        _ = m.leaseReleased(now: t0, committerGrace: grace, offsetsOutstanding: true)
        do {
            let action = m.tick(now: t0 + grace - .milliseconds(1))
            #expect(action == .none)
        }
        do {
            let action = m.tick(now: t0 + grace)
            #expect(action == .close)
        }
    }

    @Test func releasedOffsetsMeanNothingWhileRunningOrAfterAStop() {
        var m = Machine(endsWithItsSources: true)
        _ = m.leaseTaken()
        do {
            let action = m.emittedOffsetsReleased()
            #expect(action == .none)
        }
        #expect(m.phase == .running)
        _ = m.stop(now: t0, closeAfter: .seconds(30))
        // A stop keeps the consumer until shutdown or its own deadline, whatever downstream holds.
        do {
            let action = m.emittedOffsetsReleased()
            #expect(action == .none)
        }
        #expect(m.phase == .stopped)
    }
}
