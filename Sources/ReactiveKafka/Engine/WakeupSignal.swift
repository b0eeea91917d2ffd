import CRdKafka
import Glibc

/// An eventfd that librdkafka signals when a queue becomes non-empty
/// (`rd_kafka_queue_io_event_enable`) and that Swift code signals to hand the
/// engine thread a command, so the thread sleeps in `poll(2)` only while there
/// is truly nothing to do.
final class WakeupSignal: @unchecked Sendable {
    let fd: Int32
    /// The 8 bytes librdkafka writes: eventfd only accepts 8-byte writes.
    static let payload: [UInt8] = withUnsafeBytes(of: UInt64(1).littleEndian) { Array($0) }

    init() throws(KafkaError) {
        fd = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        if fd < 0 { throw KafkaError(.fatal, "could not create an eventfd: errno \(errno)") }
    }

    deinit { close(fd) }

    /// Wakes the thread waiting in ``wait(timeoutMilliseconds:)``.
    func signal() {
        var one: UInt64 = 1
        _ = write(fd, &one, 8)
    }

    /// Clears pending signals. Call before draining the queues, so that a
    /// signal arriving during the drain wakes the next wait.
    func clear() {
        var value: UInt64 = 0
        _ = read(fd, &value, 8)
    }

    /// Blocks the calling (dedicated) thread until signalled or the timeout passes.
    func wait(timeoutMilliseconds: Int32) {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        _ = poll(&pfd, 1, timeoutMilliseconds)
    }
}
