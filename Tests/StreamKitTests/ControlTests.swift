import AsyncAlgorithms
import Synchronization
import Testing

@testable import StreamKit

@Suite(.timeLimit(.minutes(1))) struct ControlTests {
    @Test func sharedKillSwitchShutdownCompletesAQuietStreamAtOnce() async throws {
        let probe = Probe()
        let stop = SharedKillSwitch()
        var iterator = ProbedSequence(count: 100, probe: probe, hangAt: 2).killable(by: stop).makeAsyncIterator()
        #expect(try await iterator.next() == 0)
        #expect(try await iterator.next() == 1)
        let waiting = Task { [iterator] in
            var iterator = iterator
            return try await iterator.next()
        }
        #expect(await eventually { probe.pulled == 2 })
        stop.shutdown()
        #expect(try await waiting.value == nil)
        // The reader is cancelled (in the upstream's wait, or before it pulls again) and the upstream released.
        #expect(await eventually { probe.iteratorsAlive == 0 })
    }

    @Test func abortFailsEveryControlledStream() async throws {
        let stop = SharedKillSwitch()
        let streams = (0..<2).map { _ in
            Task { for try await _ in ProbedSequence(count: 10, probe: Probe(), hangAt: 1).killable(by: stop) {} }
        }
        for _ in 0..<1_000 { await Task.yield() }
        stop.abort(TestError(tag: 9))
        for stream in streams {
            await #expect(throws: TestError(tag: 9)) { try await stream.value }
        }
    }

    @Test func aStreamAttachedAfterTheSwitchFiredEndsImmediately() async throws {
        let stop = SharedKillSwitch()
        stop.shutdown()
        #expect(try await (0..<10).async.killable(by: stop).collect().isEmpty)
    }

    @Test func uniqueKillSwitchIsMaterializedBesideTheSourceValue() async throws {
        let source = Source(ProbedSequence(count: 100, probe: Probe(), hangAt: 3), materialized: "mat").killSwitch()
        let (name, killSwitch) = source.materialized
        #expect(name == "mat")
        let graph = source.to(Sinks.collect(Int.self)).start()
        for _ in 0..<1_000 { await Task.yield() }
        killSwitch.shutdown()
        #expect(try await graph.completion.value == [0, 1, 2])
    }

    @Test func watchTerminationReportsFinishFailureAndCancellation() async throws {
        let seen = Mutex<[String]>([])
        @Sendable func record(_ termination: StreamTermination) {
            let text =
                switch termination {
                case .finished: "finished"
                case .failed(let error): "failed \((error as? TestError)?.tag ?? -1)"
                case .cancelled: "cancelled"
                }
            seen.withLock { $0.append(text) }
        }
        _ = try await (0..<3).async.watchTermination(record).collect()
        _ = try? await ProbedSequence(count: 5, probe: Probe(), failAt: 2).watchTermination(record).collect()
        do {
            var iterator = (0..<3).async.watchTermination(record).makeAsyncIterator()
            _ = try await iterator.next()
        }
        #expect(seen.withLock { $0 } == ["finished", "failed 2", "cancelled"])
    }

    @Test func watchTerminationMaterializesAnAwaitableWatcher() async throws {
        let source = Source(ProbedSequence(count: 5, probe: Probe(), failAt: 3)).watchTermination()
        let (_, watcher) = source.materialized
        _ = try? await source.run(into: Sinks.ignore(Int.self))
        guard case .failed(let error) = await watcher.termination() else {
            Issue.record("expected a failure")
            return
        }
        #expect(error as? TestError == TestError(tag: 3))
    }
}

/// A source factory that fails each run after `elements` elements, counting runs.
private final class FlakySource: Sendable {
    let runs = Mutex(0)
    func make(elements: Int) -> AsyncThrowingStream<Int, any Error> {
        let run = runs.withLock {
            $0 += 1
            return $0
        }
        return AsyncThrowingStream { continuation in
            for n in 0..<elements { continuation.yield(run * 100 + n) }
            continuation.finish(throwing: TestError(tag: run))
        }
    }
}

@Suite(.timeLimit(.minutes(1))) struct RestartTests {
    @Test func backoffDoublesUpToTheMaximumWithJitter() {
        let settings = RestartSettings(minBackoff: .seconds(1), maxBackoff: .seconds(10), randomFactor: 0.5)
        #expect(settings.backoff(forRestart: 0, random: 0) == .seconds(1))
        #expect(settings.backoff(forRestart: 3, random: 0) == .seconds(8))
        #expect(settings.backoff(forRestart: 10, random: 0) == .seconds(10))
        #expect(settings.backoff(forRestart: 1, random: 1) == .seconds(3))
    }

    @Test func restartSourceRestartsAfterTheBackoffAndGivesUpAfterMaxRestarts() async throws {
        let clock = ManualClock()
        let flaky = FlakySource()
        let settings = RestartSettings(
            minBackoff: .seconds(1), maxBackoff: .seconds(4), randomFactor: 0, maxRestarts: 2)
        let consumer = Task {
            var got: [Int] = []
            do {
                for try await n in RestartSource.withBackoff(settings, clock: clock, { flaky.make(elements: 2) }) {
                    got.append(n)
                }
                return (got, nil as TestError?)
            } catch {
                return (got, error as? TestError)
            }
        }
        await clock.waitForSleepers(count: 1)
        #expect(flaky.runs.withLock { $0 } == 1)
        clock.advance(by: .seconds(1)) // first backoff: minBackoff
        await clock.waitForSleepers(count: 1)
        clock.advance(by: .seconds(2)) // second backoff: doubled
        let (got, error) = await consumer.value
        #expect(got == [100, 101, 200, 201, 300, 301])
        #expect(error == TestError(tag: 3))
        #expect(flaky.runs.withLock { $0 } == 3)
    }

    @Test func onFailuresOnlyDoesNotRestartACompletedRun() async throws {
        let runs = Mutex(0)
        let settings = RestartSettings(minBackoff: .seconds(1), maxBackoff: .seconds(1), randomFactor: 0)
        let got = try await RestartSource.onFailuresWithBackoff(settings, clock: ManualClock()) {
            runs.withLock { $0 += 1 }
            return (0..<3).async
        }.collect()
        #expect(got == [0, 1, 2])
        #expect(runs.withLock { $0 } == 1)
    }

    @Test func restartFlowContinuesWithTheRestOfTheUpstream() async throws {
        let clock = ManualClock()
        let incarnations = Mutex(0)
        let settings = RestartSettings(
            minBackoff: .seconds(1), maxBackoff: .seconds(1), randomFactor: 0, maxRestarts: 3)
        let flow: FlowOf<Int, Int> = RestartFlow.withBackoff(settings, clock: clock) { upstream in
            let incarnation = incarnations.withLock {
                $0 += 1
                return $0
            }
            return upstream.map { n -> Int in
                // The first incarnation fails on 3; the next ones pass everything.
                if incarnation == 1 && n == 3 { throw TestError(tag: 3) }
                return n
            }
        }
        let consumer = Task { try await (0..<8).async.via(flow).collect() }
        await clock.waitForSleepers(count: 1)
        clock.advance(by: .seconds(1))
        // Element 3 was lost with the failed incarnation, as in Akka.
        #expect(try await consumer.value == [0, 1, 2, 4, 5, 6, 7])
        #expect(incarnations.withLock { $0 } == 2)
    }

    @Test func restartFlowDoesNotRestartWhenTheUpstreamFailed() async throws {
        let settings = RestartSettings(minBackoff: .seconds(1), maxBackoff: .seconds(1), randomFactor: 0)
        let flow: FlowOf<Int, Int> = RestartFlow.withBackoff(settings, clock: ManualClock()) { $0 }
        await #expect(throws: TestError(tag: 2)) {
            _ = try await ProbedSequence(count: 5, probe: Probe(), failAt: 2).via(flow).collect()
        }
    }

    @Test func invalidSettingsAreRejected() async throws {
        let settings = RestartSettings(minBackoff: .seconds(5), maxBackoff: .seconds(1), randomFactor: 0)
        await #expect(throws: StreamKitError.self) {
            _ = try await RestartSource.withBackoff(settings, clock: ManualClock()) { (0..<1).async }.collect()
        }
    }
}
