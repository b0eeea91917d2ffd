import CRdKafka
import Synchronization

/// A librdkafka client asked questions with blocking calls: the handle, and the
/// ``BlockingCallThread`` those calls and the handle's destruction run on, so that none
/// occupies a thread of Swift's cooperative pool. ``MetadataClient`` and the lag reader
/// are built on it.
///
/// Calls run one at a time in the order asked; ``close()`` destroys the handle on the same
/// thread after them, so a call never races the destruction. Deinit closes.
final class BlockingClient: Sendable {
    private struct HandleBox: @unchecked Sendable {
        var rk: OpaquePointer?
    }

    private let handle: Mutex<HandleBox>
    private let thread: BlockingCallThread
    private let timeout: Duration
    /// What the client is called in errors ("metadata client").
    private let name: String

    /// Owns `rk` (destroyed on close); each call is answered or fails within `timeout`.
    /// `threadName` shows in thread listings (at most 15 characters on Linux).
    init(_ rk: OpaquePointer, name: String, threadName: String, timeout: Duration) {
        handle = Mutex(HandleBox(rk: rk))
        thread = BlockingCallThread(name: threadName)
        self.timeout = timeout
        self.name = name
    }

    deinit {
        close()
        thread.stop()
    }

    /// Releases the handle: destroyed on the client's thread after the calls already asked
    /// for. Later calls fail with `.shutDown`. Idempotent.
    func close() {
        let rk = handle.withLock { box -> OpaquePointer? in
            defer { box.rk = nil }
            return box.rk
        }
        if let rk {
            let box = HandleBox(rk: rk)
            thread.submit { rd_kafka_destroy(box.rk) }
        }
    }

    /// Runs blocking librdkafka calls on the client's thread, within the timeout of now
    /// (time spent waiting behind earlier calls counts).
    func run<T: Sendable>(_ body: @escaping @Sendable (OpaquePointer, BlockingCallDeadline) throws(KafkaError) -> T)
        async throws(KafkaError) -> T
    {
        let deadline = BlockingCallDeadline(timeout: timeout, client: name)
        let name = self.name
        let result: Result<T, KafkaError> = await thread.run {
            // Read on the thread, so that close() (which destroys on the same thread) cannot race a call.
            guard let rk = self.handle.withLock({ $0.rk }) else {
                return .failure(KafkaError(.shutDown, "the \(name) was closed"))
            }
            do throws(KafkaError) {
                return .success(try body(rk, deadline))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }
}
