/// Running: the tasks of a run, and what a worker does with each record.
extension ParallelRun {
    /// Starts the run's tasks (once, on the downstream's first pull).
    func start(_ source: KafkaPartitionedSequence<Message>, engineBox: EngineReference) {
        state.withLock { s in
            guard s.supervisor == nil else { return }
            s.supervisor = Task { await self.supervise(source, engineBox: engineBox) }
        }
    }

    /// Runs the workers, the committer and a reader per assigned partition until the source
    /// ends (the consumer stopped, failed, or the stream was cancelled), then commits what
    /// completed and lets the consumer go.
    private func supervise(_ source: KafkaPartitionedSequence<Message>, engineBox: EngineReference) async {
        var deadLetters: KafkaProducer<Key, Value>?
        if case .deadLetter(_, let producerSettings) = failurePolicy {
            do { deadLetters = try KafkaProducer(producerSettings) } catch { fail(error) }
        }
        var observed: ConsumerEngine?
        if state.withLock({ $0.failure == nil }) {
            await withTaskGroup(of: Void.self) { group in
                let producer = deadLetters
                for _ in 0..<settings.maxConcurrency { group.addTask { await self.work(deadLetters: producer) } }
                group.addTask { await self.commitPeriodically() }
                observed = await readPartitions(source, engineBox: engineBox)
                close()
                await commitNow()
                group.cancelAll()
            }
        }
        await deadLetters?.close()
        await ending()
        observed?.removeCommitRequestObserver(ObjectIdentifier(self))
        finish()
    }

    /// A reader per assigned partition, until the source and every reader ended. Returns the
    /// consumer it registered with (to be asked for commits when a revoke waits for them).
    private func readPartitions(_ source: KafkaPartitionedSequence<Message>, engineBox: EngineReference) async
        -> ConsumerEngine?
    {
        await withTaskGroup(of: Void.self, returning: ConsumerEngine?.self) { readers in
            var observed: ConsumerEngine?
            do {
                for try await assigned in source {
                    let (partition, records) = (assigned.partition, assigned.source)
                    if observed == nil, let engine = engineBox.engine {
                        observed = engine
                        state.withLock { $0.engine = engine }
                        engine.addCommitRequestObserver(ObjectIdentifier(self)) { [weak self] in self?.revokeStarting()
                        }
                    }
                    let engine = observed
                    readers.addTask { await self.read(partition, records, engine: engine) }
                }
            } catch is CancellationError {
            } catch {
                fail(error)
            }
            await readers.waitForAll()
            return observed
        }
    }

    /// A worker: runs records until the run closes.
    private func work(deadLetters: KafkaProducer<Key, Value>?) async {
        var next = await nextWork()
        while let (work, ticket) = next {
            let record = work.message.record
            // Exactly-once: the gate knows the record's lane (refused once its partition is let go).
            let outcome =
                transactions == nil
                ? await attempt(record)
                : await ParallelLane.$current.withValue(work.lane) {
                    await attempt(record)
                }
            switch outcome {
            case .success(let output):
                next = await completedThenNext(ticket, offset: record.offset, output: output)
            case .failure(let error) where error is CancellationError:
                abandoned(ticket)
                next = await nextWork()
            case .failure(let error):
                if case .deadLetter(let topic, _) = failurePolicy, let deadLetters {
                    do {
                        _ = try await deadLetters.send(deadLetter(record, error: error, topic: topic))
                        next = await completedThenNext(ticket, offset: record.offset, output: nil)
                        continue
                    } catch {
                        abandoned(ticket)
                        fail(
                            KafkaError(
                                error.kind,
                                "sending the record at \(record.topicPartition) offset \(record.offset) to the dead-letter topic \(topic): \(error.message)",
                                code: error.code))
                    }
                } else {
                    abandoned(ticket)
                    fail(error)
                }
                next = await nextWork()
            }
        }
    }

    /// Processes `record`, retrying with backoff; a cancelled task stops with `CancellationError`.
    private func attempt(_ record: ConsumerRecord<Key, Value>) async -> Result<Output, any Error> {
        var attempt = 1
        while true {
            do {
                return .success(try await process(record))
            } catch {
                if Task.isCancelled || error is ParallelRecordWithdrawn { return .failure(CancellationError()) }
                if attempt >= settings.retry.maxAttempts { return .failure(error) }
                logger.debug(
                    "processing a record failed: retrying",
                    metadata: [
                        "partition": "\(record.topicPartition)", "offset": "\(record.offset)", "attempt": "\(attempt)",
                        "error": "\(error)",
                    ])
                do { try await Task.sleep(for: settings.retry.backoff(after: attempt)) } catch {
                    return .failure(CancellationError())
                }
                attempt += 1
            }
        }
    }

    /// `record` for the dead-letter `topic`: its key, value and headers, the error and its origin.
    private func deadLetter(_ record: ConsumerRecord<Key, Value>, error: any Error, topic: String) -> ProducerRecord<
        Key, Value
    > {
        let headers =
            record.headers + [
                KafkaHeader(key: "parallel.error", value: KafkaBytes("\(error)")),
                KafkaHeader(key: "parallel.topic", value: KafkaBytes(record.topic)),
                KafkaHeader(key: "parallel.partition", value: KafkaBytes("\(record.partition)")),
                KafkaHeader(key: "parallel.offset", value: KafkaBytes("\(record.offset)")),
            ]
        return ProducerRecord(topic: topic, key: record.key, value: record.value, headers: headers)
    }
}
