import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Buffers output for a file descriptor (stdout) and writes it on a queue of
/// its own, so a slow reader of the pipe blocks that queue, never the Swift
/// cooperative pool.
///
/// Lines are appended to memory; ``flush()`` returns once everything appended
/// before it is written to the descriptor. Callers commit offsets only after
/// flushing, so a committed record has been handed to the reader.
final class OutputWriter: Sendable {
    /// Writing failed (e.g. the reader closed the pipe).
    struct WriteError: Error, CustomStringConvertible {
        let errno: Int32
        var description: String { "writing output failed: \(String(cString: strerror(errno)))" }
    }

    private let descriptor: Int32
    private let pending = Mutex<[UInt8]>([])
    private let queue = DispatchQueue(label: "rkafka.output")

    /// A writer to `descriptor` (not closed by the writer).
    init(descriptor: Int32 = STDOUT_FILENO) {
        self.descriptor = descriptor
    }

    /// Appends bytes to the buffer; nothing is written until ``flush()``.
    func append(_ body: (inout [UInt8]) -> Void) {
        pending.withLock { body(&$0) }
    }

    /// Writes everything appended so far; returns when it is written.
    func flush() async throws {
        let bytes = pending.withLock { buffer -> [UInt8] in
            defer { buffer.removeAll(keepingCapacity: true) }
            return buffer
        }
        guard !bytes.isEmpty else { return }
        let descriptor = descriptor
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            queue.async {
                continuation.resume(with: Result { try Self.writeAll(bytes, to: descriptor) })
            }
        }
    }

    private static func writeAll(_ bytes: [UInt8], to descriptor: Int32) throws {
        try bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw WriteError(errno: errno)
                }
                offset += written
            }
        }
    }
}
