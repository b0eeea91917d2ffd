import CRdKafka

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A file descriptor that librdkafka signals when a queue becomes non-empty
/// (`rd_kafka_queue_io_event_enable`) and that Swift code signals to hand the
/// engine thread a command, so the thread sleeps in `poll(2)` only while there
/// is truly nothing to do.
///
/// Linux uses an eventfd (one descriptor, one counter). Darwin has no eventfd,
/// so it uses a non-blocking pipe: librdkafka and ``signal()`` write to its
/// write end (``fd``), the engine thread polls and drains its read end. A pipe
/// that is full is still readable, so a write refused for want of space loses
/// no wake-up.
final class WakeupSignal: @unchecked Sendable {
    /// The descriptor librdkafka writes ``payload`` to (the eventfd; a pipe's write end).
    let fd: Int32
    /// The descriptor the engine thread polls and drains (the eventfd itself; a pipe's read end).
    private let readFD: Int32
    /// The 8 bytes librdkafka writes: eventfd only accepts 8-byte writes (a pipe takes any).
    static let payload: [UInt8] = withUnsafeBytes(of: UInt64(1).littleEndian) { Array($0) }

    init() throws(KafkaError) {
        #if os(Linux)
            fd = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
            if fd < 0 { throw KafkaError(.fatal, "could not create an eventfd: errno \(errno)") }
            readFD = fd
        #else
            var ends: [Int32] = [-1, -1]
            if pipe(&ends) != 0 { throw KafkaError(.fatal, "could not create a wake-up pipe: errno \(errno)") }
            // Neither end may block: librdkafka writes from its own threads, and a drain stops at "empty".
            for end in ends {
                _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
                _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            }
            readFD = ends[0]
            fd = ends[1]
        #endif
    }

    deinit {
        close(fd)
        if readFD != fd { close(readFD) }
    }

    /// Wakes the thread waiting in ``wait(timeoutMilliseconds:)``.
    func signal() {
        var one: UInt64 = 1
        _ = write(fd, &one, 8)
    }

    /// Clears pending signals. Call before draining the queues, so that a
    /// signal arriving during the drain wakes the next wait.
    func clear() {
        #if os(Linux)
            // One read resets the eventfd's counter, however many signals it holds.
            var value: UInt64 = 0
            _ = read(readFD, &value, 8)
        #else
            // A pipe holds every byte written (librdkafka's payloads and ours): read until empty.
            let size = 64
            var buffer = [UInt8](repeating: 0, count: size)
            while read(readFD, &buffer, size) > 0 {}
        #endif
    }

    /// Blocks the calling (dedicated) thread until signalled or the timeout passes.
    func wait(timeoutMilliseconds: Int32) {
        var pfd = pollfd(fd: readFD, events: Int16(POLLIN), revents: 0)
        _ = poll(&pfd, 1, timeoutMilliseconds)
    }
}
