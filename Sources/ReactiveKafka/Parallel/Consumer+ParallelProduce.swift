import Logging
import StreamKit

extension Consumer {
    /// A parallel source for consume → process → produce: `process` returns a ``ProducerMessage``
    /// (what ``Producer/flexiFlow(_:)`` takes) whose records are produced with `producerSettings`,
    /// and the stream emits a ``ProducerResult`` per record (what `flexiFlow` emits).
    ///
    /// Delivery: at-least-once, end to end. A record counts as done (its offset committable, exactly
    /// as in ``parallelSource(_:subscription:parallel:onFailure:logger:process:)``) only once every
    /// record of its message was acknowledged by the broker (per `acks`); a record whose outputs were
    /// not all acknowledged is never committed past. After a crash, the records in flight or done
    /// since the last commit (``ParallelSettings/commitInterval``) are processed again and their
    /// outputs written twice; a drain, a revoke and a stream failure commit what was acknowledged first.
    ///
    /// Order: a record keeps its slot and its key (or partition) until its outputs are acknowledged,
    /// so with ``ParallelOrdering/key`` the outputs of one key are produced in offset order (one
    /// record of a key in flight at a time), with ``ParallelOrdering/partition`` those of one input
    /// partition, and with ``ParallelOrdering/unordered`` in no particular order.
    ///
    /// Back-pressure: at most ``ParallelSettings/maxConcurrency`` records are processed or waiting
    /// for acknowledgements at once; when librdkafka's queue (`queue.buffering.max.messages`) is
    /// full, workers wait for room. Results wait for the downstream as in the plain parallel source.
    ///
    /// Failures: a record whose `process` throws or whose outputs are not acknowledged (too large,
    /// unknown topic, …) is retried whole (``ParallelSettings/retry``: `process` runs again and its
    /// records are sent again, so those acknowledged before the failure may be written twice),
    /// then `onFailure` fails the stream or dead-letters the input record.
    ///
    /// Cancellation: running handlers are cancelled and processed again later; records already
    /// handed to the producer are waited for (up to `delivery.timeout.ms`) and, once acknowledged,
    /// committed. The stage creates its producer per run and closes it (flushing) at the end.
    public static func parallelSource<Key, Value, OutKey, OutValue, PassThrough>(
        _ settings: ConsumerSettings<Key, Value>,
        subscription: Subscription,
        parallel: ParallelSettings = ParallelSettings(),
        producerSettings: ProducerSettings<OutKey, OutValue>,
        onFailure: ParallelFailurePolicy<Key, Value> = .failStream,
        logger: Logger = Logger(label: "reactive-kafka.parallel"),
        process:
            @escaping @Sendable (ConsumerRecord<Key, Value>) async throws -> ProducerMessage<
                OutKey, OutValue, PassThrough
            >
    ) -> Source<ParallelSequence<ProducerResult<OutKey, OutValue, PassThrough>>, ConsumerControl> {
        parallelSource(
            settings, subscription: subscription, parallel: parallel, onFailure: onFailure, logger: logger,
            makeProcess: { () throws(KafkaError) in
                let producer = try KafkaProducer(producerSettings)
                return (
                    { record in try await producer.produce(try await process(record)) }, { await producer.close() }, nil
                )
            })
    }

    /// Like ``parallelSource(_:subscription:parallel:producerSettings:onFailure:logger:process:)``,
    /// producing through a shared `producer` (which the source does not close).
    public static func parallelSource<Key, Value, OutKey, OutValue, PassThrough>(
        _ settings: ConsumerSettings<Key, Value>,
        subscription: Subscription,
        parallel: ParallelSettings = ParallelSettings(),
        producer: KafkaProducer<OutKey, OutValue>,
        onFailure: ParallelFailurePolicy<Key, Value> = .failStream,
        logger: Logger = Logger(label: "reactive-kafka.parallel"),
        process:
            @escaping @Sendable (ConsumerRecord<Key, Value>) async throws -> ProducerMessage<
                OutKey, OutValue, PassThrough
            >
    ) -> Source<ParallelSequence<ProducerResult<OutKey, OutValue, PassThrough>>, ConsumerControl> {
        parallelSource(
            settings, subscription: subscription, parallel: parallel, onFailure: onFailure, logger: logger,
            makeProcess: { () throws(KafkaError) in
                ({ record in try await producer.produce(try await process(record)) }, {}, nil)
            })
    }
}

extension KafkaProducer {
    /// Produces `message`'s records, all handed to librdkafka before the first acknowledgement is
    /// awaited, and returns its result once every one is acknowledged.
    /// - Throws: a record's failure, once every record handed over was answered (so none is
    ///   still in flight when the message is retried).
    func produce<PassThrough>(_ message: ProducerMessage<Key, Value, PassThrough>) async throws(KafkaError)
        -> ProducerResult<Key, Value, PassThrough>
    {
        switch message {
        case .passThrough(let passThrough):
            return .passThrough(passThrough)
        case .single(let record, let passThrough):
            return .single(try await send(record), record, passThrough: passThrough)
        case .multi(let records, let passThrough):
            var tokens: [UInt64] = []
            tokens.reserveCapacity(records.count)
            var failure: KafkaError?
            for record in records {
                do throws(KafkaError) { tokens.append(try await enqueue(record)) } catch {
                    failure = error
                    break
                }
            }
            var written: [ProducedRecord<Key, Value>] = []
            written.reserveCapacity(tokens.count)
            for (token, record) in zip(tokens, records) {
                do throws(KafkaError) {
                    written.append(ProducedRecord(metadata: try await delivery(of: token, record), record: record))
                } catch {
                    failure = failure ?? error
                }
            }
            if let failure { throw failure }
            return .multi(written, passThrough: passThrough)
        }
    }
}
