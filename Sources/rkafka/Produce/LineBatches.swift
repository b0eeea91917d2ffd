import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The lines of a file descriptor (stdin), without their `\n` / `\r\n`, handed over in
/// batches: whatever complete lines one `read(2)` delivered. Reading blocks, so it happens on
/// a dedicated thread, never on the cooperative pool.
///
/// Back-pressure: the reader thread takes a permit before each read and the consumer returns
/// it when it takes the batch, so at most `maxBatchesAhead` batches (64 KiB of input each) are
/// buffered. An interactive terminal yields each line as it is typed. Iterate once.
struct LineBatches: AsyncSequence, Sendable {
    typealias Element = [String]

    private let stream: AsyncStream<[String]>
    private let permits: DispatchSemaphore

    init(fileDescriptor: Int32 = 0, maxBatchesAhead: Int = 4) {
        let (stream, continuation) = AsyncStream<[String]>.makeStream()
        // Created at 0 and signalled up: libdispatch traps when a semaphore is destroyed below
        // its initial value, which is what happens when the reader still holds permits at exit.
        let permits = DispatchSemaphore(value: 0)
        for _ in 0..<Swift.max(1, maxBatchesAhead) { permits.signal() }
        self.stream = stream
        self.permits = permits
        let thread = Thread {
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            var partial: [UInt8] = []
            while true {
                permits.wait()
                let count = buffer.withUnsafeMutableBytes { read(fileDescriptor, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR {
                    permits.signal()
                    continue
                }
                if count <= 0 {
                    // End of input (or a read error, which ends input the same way): a last
                    // line without a newline still counts.
                    if !partial.isEmpty { continuation.yield([Self.line(partial[...])]) }
                    continuation.finish()
                    return
                }
                var lines: [String] = []
                var start = 0
                for i in 0..<count where buffer[i] == UInt8(ascii: "\n") {
                    if partial.isEmpty {
                        lines.append(Self.line(buffer[start..<i]))
                    } else {
                        partial.append(contentsOf: buffer[start..<i])
                        lines.append(Self.line(partial[...]))
                        partial.removeAll(keepingCapacity: true)
                    }
                    start = i + 1
                }
                partial.append(contentsOf: buffer[start..<count])
                if lines.isEmpty {
                    permits.signal()
                } else {
                    continuation.yield(lines)
                }
            }
        }
        thread.name = "rkafka-stdin"
        thread.start()
    }

    private static func line(_ bytes: ArraySlice<UInt8>) -> String {
        let trimmed = bytes.last == UInt8(ascii: "\r") ? bytes.dropLast() : bytes
        return String(decoding: trimmed, as: UTF8.self)
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncStream<[String]>.AsyncIterator
        let permits: DispatchSemaphore

        mutating func next() async -> [String]? {
            guard let batch = await base.next() else { return nil }
            permits.signal()
            return batch
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: stream.makeAsyncIterator(), permits: permits) }
}
