import CRdKafka
import Foundation
import Synchronization

/// Commands: work that callers queue for the engine thread (``RestrictedConsumer`` access).
extension ConsumerEngine {
    /// Runs `body` on the consumer's thread with the ``RestrictedConsumer``, between batches.
    /// Throws `.shutDown` if the consumer closes before running it, and `.cancelled` if the
    /// calling task is cancelled before it runs.
    func withConsumer<T: Sendable>(_ body: @escaping @Sendable (RestrictedConsumer) throws(KafkaError) -> T)
        async throws(KafkaError) -> T
    {
        // Set under the state lock when the command is queued; read by the cancellation handler.
        let queuedID = Atomic<UInt64>(0)
        let result: Result<T, KafkaError> = await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Result<T, KafkaError>, Never>) in
                let command = Command(
                    run: { consumer in
                        do throws(KafkaError) { continuation.resume(returning: .success(try body(consumer))) } catch {
                            continuation.resume(returning: .failure(error))
                        }
                    },
                    refuse: { error in continuation.resume(returning: .failure(error)) })
                let refused: KafkaError? = state.withLock { s in
                    if s.lifecycle.isEnding {
                        return KafkaError(.shutDown, "the consumer is shut down: use it while the stream runs")
                    }
                    if Task.isCancelled { return .cancelledWhileWaiting }
                    queuedID.store(s.commands.queue(command), ordering: .relaxed)
                    return nil
                }
                if let refused { command.refuse(refused) } else { wakeup.signal() }
            }
        } onCancel: {
            // Only a command still queued is withdrawn; one already running completes.
            let withdrawn: Command? = state.withLock { s in
                let id = queuedID.load(ordering: .relaxed)
                guard id != 0 else { return nil }
                return s.commands.withdraw(id)
            }
            withdrawn?.refuse(.cancelledWhileWaiting)
        }
        return try result.get()
    }

    /// Queues `work` for the engine thread without waiting for it (a released lease's detach);
    /// dropped if the consumer is closing (closing lets every partition go anyway).
    func enqueue(_ work: @escaping @Sendable (RestrictedConsumer) -> Void) {
        let queued = state.withLock { s -> Bool in
            guard !s.lifecycle.isEnding else { return false }
            _ = s.commands.queue(Command(run: work, refuse: { _ in }))
            return true
        }
        if queued { wakeup.signal() }
    }

    /// Makes every record of `partitions` buffered or handed out so far unemittable (engine thread).
    func invalidate(_ partitions: Set<TopicPartition>) {
        state.withLock { s in invalidate(partitions, &s) }
    }

    /// ``invalidate(_:)`` with the state lock held: buffered records dropped, records
    /// handed out but not yet emitted made unemittable (a new epoch).
    func invalidate(_ partitions: Set<TopicPartition>, _ s: inout State) {
        let flow = s.buffer.remove(partitions: partitions)
        if flow != .none { s.pendingFlowControl.append(flow) }
        let epoch = revocationEpoch.add(1, ordering: .releasing).newValue
        for p in partitions { s.invalidatedAt[p] = epoch }
    }

    /// Runs the queued ``withConsumer(_:)`` commands (engine thread).
    func serveCommands() {
        let commands = state.withLock { s in s.commands.takeAll() }
        guard !commands.isEmpty else { return }
        let consumer = restrictedConsumer
        for command in commands { command.run(consumer) }
    }

    var restrictedConsumer: RestrictedConsumer {
        // Unowned (checked): a restricted consumer serves one command or handler call on this engine's thread.
        RestrictedConsumer(
            handle: handle, timeout: configuration.commitTimeout,
            onSeek: { [unowned self] offsets in
                // The application moved these partitions on purpose: a jump back there is no reset.
                for (p, offset) in offsets {
                    // A seek made now replaces one still waiting for the partition's fetcher.
                    seeksAwaitingFetcher[p] = nil
                    newestTimestamp[p] = nil
                    resetBase[p] = offset >= 0 ? offset : nil
                    nextOffsets[p] = offset >= 0 ? offset : nil
                }
            },
            awaitFetchers: { [unowned self] offsets in
                seeksAwaitingFetcher.merge(offsets) { $1 }
                for p in offsets.keys where fetchersStoppedByReset.contains(p) { fetchingStoppedByReset(p) }
            })
    }
}
