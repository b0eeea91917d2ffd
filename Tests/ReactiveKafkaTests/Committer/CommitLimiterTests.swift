import Testing

@testable import ReactiveKafka

@Suite struct CommitLimiterTests {
    @Test func activitySignalledBeforeTheTimerWaitsIsNotLost() async throws {
        // The timer reads "no deadline", an offset arrives and signals, then the timer waits:
        // the wait must return, or the offset's batch would never be committed on time.
        let limiter = CommitLimiter(limit: 1)
        limiter.signalActivity()
        try await withTimeout { await limiter.waitForActivity() }
    }

    @Test func waitForActivityReturnsOnSignal() async throws {
        let limiter = CommitLimiter(limit: 1)
        let waiting = Task { await limiter.waitForActivity() }
        // Whether the signal lands before or after the wait begins, the wait returns.
        limiter.signalActivity()
        try await valueWithin(waiting)
    }

    @Test func cancelledWaitReturns() async throws {
        let limiter = CommitLimiter(limit: 1)
        let waiting = Task { await limiter.waitForActivity() }
        waiting.cancel()
        try await valueWithin(waiting)
    }

    @Test func permitsPassInOrderToWaiters() async throws {
        let limiter = CommitLimiter(limit: 2)
        await limiter.acquire()
        await limiter.acquire()
        let third = Task { await limiter.acquire() }
        limiter.release()
        try await valueWithin(third)
        limiter.release()
        limiter.release()
        // All slots free again: two acquisitions succeed at once.
        try await withTimeout {
            await limiter.acquire()
            await limiter.acquire()
        }
    }
}
