/// A file read in chunks: Akka's `FileIO.fromPath`.
///
/// Each `next()` reads up to `chunkSize` bytes on a dispatch queue of the
/// file's own (blocking reads never occupy the Swift concurrency pool); the
/// next chunk is read only when asked for, so the consumer sets the pace and
/// memory is one chunk. The file is opened on the first `next()` and closed
/// at its end. Failures throw ``StreamKitError/io(operation:path:errno:)``.
///
/// ```swift
/// for try await chunk in FileSource(path: "/var/log/app.log", chunkSize: 64 * 1024) { … }
/// ```
public struct FileSource: AsyncSequence, Sendable {
    public typealias Element = [UInt8]
    public typealias Failure = any Error

    /// The file read.
    public let path: String
    /// The most bytes one element holds.
    public let chunkSize: Int

    /// A source over `path` in chunks of at most `chunkSize` bytes (default 64 KiB).
    public init(path: String, chunkSize: Int = 64 * 1024) {
        self.path = path
        self.chunkSize = chunkSize
    }

    public func makeAsyncIterator() -> Iterator { Iterator(path: path, chunkSize: chunkSize) }

    /// The iterator of ``FileSource``.
    public struct Iterator: AsyncIteratorProtocol {
        let chunkSize: Int
        let file: FileHandleWorker
        var opened = false
        var done = false

        init(path: String, chunkSize: Int) {
            self.chunkSize = chunkSize
            self.file = FileHandleWorker(path: path)
        }

        public mutating func next() async throws -> [UInt8]? {
            if done { return nil }
            guard chunkSize >= 1 else {
                throw StreamKitError.invalidArgument(
                    "FileSource(chunkSize: \(chunkSize)): chunkSize must be at least 1")
            }
            do {
                if !opened {
                    try await file.open(flags: O_RDONLY)
                    opened = true
                }
                let chunk = try await file.read(upTo: chunkSize)
                if chunk.isEmpty {
                    done = true
                    try await file.close()
                    return nil
                }
                return chunk
            } catch {
                done = true
                try? await file.close()
                throw error
            }
        }
    }

    /// The file's text split into lines (without their `\n`), decoded as UTF-8.
    ///
    /// ```swift
    /// for try await line in FileSource(path: "factorials.txt").lines() { … }
    /// ```
    public func lines() -> FileLineSequence { FileLineSequence(source: self) }
}

/// The lines of a ``FileSource``; a last line without `\n` is emitted too.
/// Memory: one chunk plus the longest line.
public struct FileLineSequence: AsyncSequence, Sendable {
    public typealias Element = String
    public typealias Failure = any Error

    let source: FileSource

    public func makeAsyncIterator() -> Iterator { Iterator(chunks: source.makeAsyncIterator()) }

    /// The iterator of ``FileLineSequence``.
    public struct Iterator: AsyncIteratorProtocol {
        var chunks: FileSource.Iterator
        var partial: [UInt8] = []
        var ready: [String] = []
        var readyIndex = 0
        var finished = false

        public mutating func next() async throws -> String? {
            while true {
                if readyIndex < ready.count {
                    defer { readyIndex += 1 }
                    return ready[readyIndex]
                }
                if finished { return nil }
                ready.removeAll(keepingCapacity: true)
                readyIndex = 0
                guard let chunk = try await chunks.next() else {
                    finished = true
                    if !partial.isEmpty {
                        ready.append(String(decoding: partial, as: UTF8.self))
                        partial.removeAll()
                    }
                    continue
                }
                var start = chunk.startIndex
                for index in chunk.indices where chunk[index] == UInt8(ascii: "\n") {
                    partial.append(contentsOf: chunk[start..<index])
                    ready.append(String(decoding: partial, as: UTF8.self))
                    partial.removeAll(keepingCapacity: true)
                    start = index + 1
                }
                partial.append(contentsOf: chunk[start...])
            }
        }
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif
