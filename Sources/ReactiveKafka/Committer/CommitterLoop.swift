/// Runs a committer over an upstream of offsets: the shared engine of
/// ``Committer``'s sink and flows.
///
/// The upstream is read in a task of its own, so that a failed commit stops the
/// run at once even while the upstream is idle. A timer task flushes the
/// batch when `maxInterval` passes without it filling; commits run
/// concurrently, at most `parallelism` at once, and are reported in the order
/// their batches were formed; the first failed commit fails the run.
/// Cancelling the calling task cancels the upstream read. Every task started
/// here is awaited before `run` returns.
///
/// Only the loop over the upstream is generic, and it is inlinable, so that it is
/// specialised for the caller's upstream: reading an offset then costs no generic
/// dispatch or type-metadata lookup, which would otherwise be most of the
/// committer's cost per offset. Everything else lives in ``CommitterRun``.
@usableFromInline
enum CommitterLoop {
    @inlinable
    static func run<Upstream: AsyncSequence & Sendable>(
        _ settings: CommitterSettings,
        _ upstream: Upstream,
        onCommitted: @escaping @Sendable (CommittableOffsetBatch) -> Void
    ) async throws where Upstream.Element == CommittableOffset {
        let run = try CommitterRun.start(settings: settings, onCommitted: onCommitted)
        let reader = Task { () -> (any Error)? in
            do {
                // Synchronous per offset; only a full batch awaits (a commit slot).
                for try await offset in upstream {
                    if try run.observe(offset) { await run.startCommit() }
                }
                return nil
            } catch {
                return error
            }
        }
        try await run.complete(reading: reader)
    }
}
