import StreamKit
import Synchronization

/// Commits offsets in batches: Alpakka's `Committer`.
///
/// Offsets are gathered into a ``CommittableOffsetBatch`` (highest offset per
/// partition wins) and committed when the batch holds `maxBatch` offsets or
/// its first offset is `maxInterval` old, whichever comes first. At most
/// `parallelism` batches are committing at once; the upstream is not pulled
/// while that many are outstanding (back-pressure). When the upstream
/// completes, what is held is committed before the stage completes; when it
/// fails, what is held is committed, then the failure is rethrown.
public enum Committer {
    /// A sink that commits every offset it receives.
    public static func sink(_ settings: CommitterSettings) -> CommitterSink {
        CommitterSink(settings: settings)
    }

    /// A flow that commits offsets and emits each committed batch.
    public static func batchFlow(_ settings: CommitterSettings) -> CommitterBatchFlow {
        CommitterBatchFlow(settings: settings)
    }

    /// A flow that commits offsets and emits one value per committed batch
    /// (Alpakka's `Committer.flow`, which emits `Done`).
    public static func flow(_ settings: CommitterSettings) -> FlowOf<CommittableOffset, Void> {
        let batches = CommitterBatchFlow(settings: settings)
        return FlowOf { upstream in batches.apply(upstream).map { _ in () } }
    }
}

/// The sink of ``Committer/sink(_:)``.
public struct CommitterSink: Sink {
    public typealias Input = CommittableOffset
    public typealias Result = Void
    @usableFromInline let settings: CommitterSettings

    init(settings: CommitterSettings) { self.settings = settings }

    // Inlinable so that the per-offset loop is specialised for the caller's upstream (see `CommitterLoop`).
    @inlinable
    public func run<Upstream: AsyncSequence & Sendable>(_ upstream: Upstream) async throws
    where Upstream.Element == CommittableOffset {
        try await CommitterLoop.run(settings, upstream) { _ in }
    }
}

/// The flow of ``Committer/batchFlow(_:)``: emits each batch once committed
/// (acknowledged, with `waitForAck`; sent, with `sendAndForget`).
public struct CommitterBatchFlow: Flow {
    public typealias Input = CommittableOffset
    public typealias Output = CommittableOffsetBatch
    @usableFromInline let settings: CommitterSettings

    init(settings: CommitterSettings) { self.settings = settings }

    // Inlinable so that the per-offset loop is specialised for the caller's upstream (see `CommitterLoop`).
    @inlinable
    public func apply<Upstream: AsyncSequence & Sendable>(_ upstream: Upstream) -> AnyAsyncSequence<
        CommittableOffsetBatch
    >
    where Upstream.Element == CommittableOffset {
        let settings = settings
        // One element per committed batch, so a stream's buffer is cheap here;
        // it is bounded by `parallelism` because the loop waits for commits.
        let (stream, continuation) = AsyncThrowingStream<CommittableOffsetBatch, any Error>.makeStream()
        let pump = Task {
            do {
                try await CommitterLoop.run(settings, upstream) { batch in continuation.yield(batch) }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { termination in
            if case .cancelled = termination { pump.cancel() }
        }
        return AnyAsyncSequence(stream)
    }
}
