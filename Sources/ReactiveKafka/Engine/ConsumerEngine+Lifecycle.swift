import CRdKafka
import Foundation
import Synchronization

/// The engine's life (see ``ConsumerLifecycleStateMachine``): leases, stop, shutdown, and the close.
extension ConsumerEngine {
    /// An iterator starts reading: it holds the consumer until ``releaseLease(_:)``.
    /// False when the consumer is already closing (the iterator completes at once).
    func takeLease() -> Bool {
        state.withLock { $0.lifecycle.leaseTaken() }
    }

    /// An iterator's stream ended, however it ended. A source sharing the consumer lets its
    /// partitions go; the last lease of a consumer its sources own completes them and closes it
    /// once its committers have flushed.
    func releaseLease(_ reader: Reader) {
        if case .subset(let id) = reader {
            // Its partitions stay until what it emitted can no longer be committed downstream
            // (a committer flushing after the stream ended), bounded by closeTimeout.
            stopSubset(id, detachingBy: .now + configuration.closeTimeout)
            wakeup.signal()
        }
        let waiters = state.withLock { s in
            perform(
                s.lifecycle.leaseReleased(
                    now: .now, committerGrace: configuration.closeTimeout, offsetsOutstanding: emittedOffsetsOutstanding
                ), &s)
        }
        finish(waiters)
    }

    /// Completes the sources; the consumer stays in its group so that commits still land,
    /// until nothing holds it any more, or `closeAfter` at the latest (`nil`: until shutdown).
    func stop(closeAfter: Duration?) {
        let waiters = state.withLock { s in
            perform(s.lifecycle.stop(now: .now, closeAfter: closeAfter), &s)
        }
        finish(waiters)
    }

    /// Starts closing without waiting (an owner let go): leaves the group, destroys the consumer.
    func beginShutdown() {
        let waiters = state.withLock { s in perform(s.lifecycle.shutdown(), &s) }
        finish(waiters)
    }

    /// Carries out a lifecycle action (state lock held); returns the readers to complete.
    func perform(_ action: ConsumerLifecycleStateMachine.Action, _ s: inout State) -> Waiters {
        switch action {
        case .none:
            return Waiters()
        case .close:
            var none = Waiters()
            none.wakeEngine = true
            return none
        case .completeSources, .completeSourcesAndClose:
            s.buffer.removeAll()
            s.pendingFlowControl.append(.pauseAll)
            var waiters = Waiters(taking: &s)
            waiters.wakeEngine = true
            return waiters
        }
    }

    /// Resumes completed readers and wakes the engine thread to act (outside the lock).
    func finish(_ waiters: Waiters) {
        waiters.resume(with: .success(nil))
        if waiters.wakeEngine { wakeup.signal() }
    }

    /// Every suspended reader, taken out of the state to be resumed outside the lock.
    struct Waiters {
        var readers: [UnsafeContinuation<Delivery?, any Error>] = []
        var announcement: UnsafeContinuation<[Announcement]?, any Error>?
        var wakeEngine = false

        init() {}

        init(taking s: inout State) {
            readers = Array(s.waiters.values)
            s.waiters.removeAll()
            announcement = s.announcements.takeWaiter()
        }

        func resume(with result: Result<Delivery?, any Error>) {
            for reader in readers { reader.resume(with: result) }
            switch result {
            case .success: announcement?.resume(returning: nil)
            case .failure(let error): announcement?.resume(throwing: error)
            }
        }
    }

    /// Stops, leaves the group, and destroys the consumer. Returns when done
    /// (bounded by `closeTimeout` for commits and again for leaving the group).
    func shutdown() async {
        beginShutdown()
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let done: Bool = state.withLock { s in
                if s.phase == .closed { return true }
                s.closeWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    var phase: Phase { state.withLock { $0.phase } }

    /// The latest statistics JSON librdkafka emitted, if statistics are enabled.
    var statisticsJSON: String? { state.withLock { $0.statisticsJSON } }

    /// Bytes counted against the budget (buffered, and emitted but held downstream), and the most ever.
    var bufferedBytes: (current: Int, highWater: Int) {
        state.withLock { ($0.buffer.liveBytes, $0.buffer.highWaterBytes) }
    }

    func close(_ scratch: UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>, capacity: Int) {
        // Commits already handed to us get a chance to land before we leave the group.
        let commitDeadline = ContinuousClock.now + configuration.closeTimeout
        while state.withLock({ $0.commits.machine.hasWork && $0.failure == nil }), ContinuousClock.now < commitDeadline
        {
            wakeup.clear()
            serveCommitResults()
            sendCommits()
            housekeeping()
            let n = rd_kafka_consume_batch_queue(consumerQueue, 0, scratch, capacity)
            for i in 0..<max(0, n) { rd_kafka_message_destroy(scratch[i]) }
            wakeup.wait(timeoutMilliseconds: 50)
        }
        let deadline = ContinuousClock.now + configuration.closeTimeout
        var closedCleanly = false
        // Closing commits what is stored (auto-commit): the records emitted up to now.
        storeEmittedOffsets()
        stopHandler()
        if let error = rd_kafka_consumer_close_queue(handle, consumerQueue) {
            logger.warning("closing consumer", metadata: ["error": "\(KafkaError.consuming(error, "close"))"])
        } else {
            while ContinuousClock.now < deadline {
                wakeup.clear()
                let n = rd_kafka_consume_batch_queue(consumerQueue, 0, scratch, capacity)
                for i in 0..<max(0, n) { rd_kafka_message_destroy(scratch[i]) }
                if rd_kafka_consumer_closed(handle) != 0 {
                    closedCleanly = true
                    break
                }
                wakeup.wait(timeoutMilliseconds: 50)
            }
        }
        leftGroupCleanly.store(closedCleanly, ordering: .releasing)
        if !closedCleanly {
            logger.warning(
                "consumer did not leave its group within closeTimeout",
                metadata: ["closeTimeout": "\(configuration.closeTimeout)"])
        }
        let (commitWaiters, closeWaiters, waiters, commands) = state.withLock { s in
            s.lifecycle.closed()
            let commitWaiters = s.commits.drainAll()
            let closeWaiters = s.closeWaiters
            s.closeWaiters.removeAll()
            let waiters = Waiters(taking: &s)
            s.buffer.removeAll()
            // Queued after the loop's last serving: refused, so that no caller waits forever.
            let commands = s.commands.takeAll()
            return (commitWaiters, closeWaiters, waiters, commands)
        }
        for command in commands {
            command.refuse(
                KafkaError(.shutDown, "the consumer closed before this call ran: use it while the stream runs"))
        }
        groupRequests.releaseWaiters()
        rd_kafka_queue_io_event_enable(consumerQueue, -1, nil, 0)
        rd_kafka_queue_io_event_enable(commitQueue, -1, nil, 0)
        rd_kafka_queue_io_event_enable(messageQueue, -1, nil, 0)
        // librdkafka's close left ops on removed partitions' queues (see PartitionQueues): moved
        // to the message queue, they are freed with it.
        partitionQueues.releaseAll(to: messageQueue)
        rd_kafka_queue_destroy(messageQueue)
        rd_kafka_queue_destroy(commitQueue)
        rd_kafka_queue_destroy(consumerQueue)
        // Nothing polls the handle from here on, so no callback can reach the engine.
        callbackTarget.engine = nil
        // Wake-ups already sent hold the handle's owner; the thread ends after them.
        fetcherWakeUps.stop()
        clientOwner?.destroyFlags = closedCleanly ? 0 : Int32(RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE)
        clientOwner = nil
        waiters.resume(with: .success(nil))
        configuration.events?.finish()
        instruments?.close()
        checkHealth(now: .now)
        configuration.health?.finish()
        for c in commitWaiters {
            c.resume(throwing: KafkaError(.shutDown, "the consumer closed before this commit was acknowledged"))
        }
        for c in closeWaiters { c.resume() }
    }
}
