import Dispatch

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The C library's calls under names that do not clash with the worker's methods.
private enum System {
    static func open(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 {
        #if canImport(Glibc)
            Glibc.open(path, flags, mode)
        #elseif canImport(Musl)
            Musl.open(path, flags, mode)
        #else
            Darwin.open(path, flags, mode)
        #endif
    }
    static func write(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
        #if canImport(Glibc)
            Glibc.write(fd, buffer, count)
        #elseif canImport(Musl)
            Musl.write(fd, buffer, count)
        #else
            Darwin.write(fd, buffer, count)
        #endif
    }
    static func read(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
        #if canImport(Glibc)
            Glibc.read(fd, buffer, count)
        #elseif canImport(Musl)
            Musl.read(fd, buffer, count)
        #else
            Darwin.read(fd, buffer, count)
        #endif
    }
    static func close(_ fd: Int32) -> Int32 {
        #if canImport(Glibc)
            Glibc.close(fd)
        #elseif canImport(Musl)
            Musl.close(fd)
        #else
            Darwin.close(fd)
        #endif
    }
}

/// A file descriptor whose blocking system calls run on a serial dispatch
/// queue of its own, never on the Swift concurrency pool; callers await one
/// continuation per chunk (not per element).
final class FileHandleWorker: @unchecked Sendable {
    /// Touched only on `queue`.
    private var descriptor: Int32 = -1
    let path: String
    private let queue: DispatchQueue

    init(path: String) {
        self.path = path
        self.queue = DispatchQueue(label: "StreamKit.file \(path)")
    }

    private func onQueue<T: Sendable>(_ body: @escaping @Sendable () throws(StreamKitError) -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                do throws(StreamKitError) {
                    continuation.resume(returning: try body())
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    func open(flags: Int32) async throws {
        try await onQueue { () throws(StreamKitError) in
            let fd = System.open(self.path, flags | O_CLOEXEC, 0o644)
            if fd < 0 { throw StreamKitError.io(operation: "open", path: self.path, errno: errno) }
            self.descriptor = fd
        }
    }

    /// Writes all of `bytes`.
    func write(_ bytes: [UInt8]) async throws {
        try await onQueue { () throws(StreamKitError) in
            var offset = 0
            while offset < bytes.count {
                let written = bytes.withUnsafeBytes { raw in
                    System.write(self.descriptor, raw.baseAddress! + offset, raw.count - offset)
                }
                if written < 0 {
                    if errno == EINTR { continue }
                    throw StreamKitError.io(operation: "write", path: self.path, errno: errno)
                }
                offset += written
            }
        }
    }

    /// Reads up to `count` bytes; an empty array means end of file.
    func read(upTo count: Int) async throws -> [UInt8] {
        try await onQueue { () throws(StreamKitError) in
            var buffer = [UInt8](repeating: 0, count: count)
            while true {
                let got = buffer.withUnsafeMutableBytes { System.read(self.descriptor, $0.baseAddress!, count) }
                if got < 0 {
                    if errno == EINTR { continue }
                    throw StreamKitError.io(operation: "read", path: self.path, errno: errno)
                }
                buffer.removeSubrange(got...)
                return buffer
            }
        }
    }

    func close() async throws {
        try await onQueue { () throws(StreamKitError) in
            guard self.descriptor >= 0 else { return }
            let fd = self.descriptor
            self.descriptor = -1
            if System.close(fd) != 0 { throw StreamKitError.io(operation: "close", path: self.path, errno: errno) }
        }
    }

    deinit {
        if descriptor >= 0 { _ = System.close(descriptor) }
    }
}
