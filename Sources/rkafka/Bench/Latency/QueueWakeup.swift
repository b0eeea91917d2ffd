import CRdKafka
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A non-blocking pipe that librdkafka writes to when one of the raw loops' queues becomes
/// non-empty (`rd_kafka_queue_io_event_enable`), and that ``signal()`` writes to from
/// another thread, so that a loop sleeps in `poll(2)` only while there is nothing to serve.
/// A full pipe is still readable: a write refused for want of space loses no wake-up.
final class QueueWakeup: @unchecked Sendable {
    private let readEnd: Int32
    private let writeEnd: Int32
    private static let payload: [UInt8] = [1]

    init() throws(BenchError) {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { throw BenchError("could not create a wake-up pipe: errno \(errno)") }
        // Neither end may block: librdkafka writes from its own threads, and a drain stops at "empty".
        for end in ends {
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        readEnd = ends[0]
        writeEnd = ends[1]
    }

    deinit {
        close(readEnd)
        close(writeEnd)
    }

    /// Has librdkafka signal when `queue` becomes non-empty. Undo with ``disable(_:)`` before
    /// the queue's handle or this object goes away.
    func enable(_ queue: OpaquePointer) {
        Self.payload.withUnsafeBytes { rd_kafka_queue_io_event_enable(queue, writeEnd, $0.baseAddress, $0.count) }
    }

    func disable(_ queue: OpaquePointer) { rd_kafka_queue_io_event_enable(queue, -1, nil, 0) }

    /// Wakes the thread in ``wait(timeoutMilliseconds:)``.
    func signal() {
        var one: UInt8 = 1
        _ = write(writeEnd, &one, 1)
    }

    /// Clears pending signals. Call before serving the queues, so that a signal arriving
    /// meanwhile wakes the next wait.
    func clear() {
        var buffer = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        while withUnsafeMutableBytes(of: &buffer, { read(readEnd, $0.baseAddress, $0.count) }) > 0 {}
    }

    /// Blocks the calling (dedicated) thread until signalled or the timeout passes.
    func wait(timeoutMilliseconds: Int32) {
        var pfd = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
        _ = poll(&pfd, 1, timeoutMilliseconds)
    }
}
