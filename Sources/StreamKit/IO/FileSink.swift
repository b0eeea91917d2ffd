/// Sinks that write a stream to a file: Akka's `FileIO.toPath`.
///
/// Writes go through a 64 KiB buffer and run on a dispatch queue of the
/// file's own (blocking system calls never occupy the Swift concurrency
/// pool); the sink awaits each flushed chunk, so a slow disk back-pressures
/// the stream. The file is flushed and closed when the upstream completes;
/// on an upstream error what was written so far stays and the error is
/// rethrown. Failures to open or write throw ``StreamKitError/io(operation:path:errno:)``.
extension Sinks {
    /// Writes each element's `description` followed by a newline; returns the number of bytes written.
    ///
    /// ```swift
    /// let bytes = try await Source(factorials).run(into: Sinks.lines(toFile: "factorials.txt"))
    /// ```
    public static func lines<Input: CustomStringConvertible>(
        toFile path: String, append: Bool = false, _: Input.Type = Input.self
    ) -> SinkOf<Input, Int> {
        SinkOf { upstream in
            try await writeFile(path: path, append: append, upstream) { element, buffer in
                buffer.append(contentsOf: element.description.utf8)
                buffer.append(UInt8(ascii: "\n"))
            }
        }
    }

    /// Writes each element's bytes as they are; returns the number of bytes written.
    ///
    /// ```swift
    /// try await chunks.run(into: Sinks.bytes(toFile: "/tmp/copy.bin"))
    /// ```
    public static func bytes<Input: Sequence & Sendable>(
        toFile path: String, append: Bool = false, _: Input.Type = Input.self
    ) -> SinkOf<Input, Int> where Input.Element == UInt8 {
        SinkOf { upstream in
            try await writeFile(path: path, append: append, upstream) { element, buffer in
                buffer.append(contentsOf: element)
            }
        }
    }
}

extension AsyncSequence where Self: Sendable {
    /// Writes each element's `description` as a line to `path`; returns the bytes written.
    ///
    /// ```swift
    /// try await numbers.writeLines(toFile: "numbers.txt")
    /// ```
    @discardableResult
    public func writeLines(toFile path: String, append: Bool = false) async throws -> Int
    where Element: CustomStringConvertible {
        try await Sinks.lines(toFile: path, append: append, Element.self).run(self)
    }
}

private let flushThreshold = 64 * 1024

private func writeFile<Upstream: AsyncSequence, Element>(
    path: String, append: Bool, _ upstream: Upstream,
    encode: (Element, inout [UInt8]) -> Void
) async throws -> Int where Upstream.Element == Element {
    let file = FileHandleWorker(path: path)
    try await file.open(flags: O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC))
    var buffer: [UInt8] = []
    buffer.reserveCapacity(flushThreshold + 1024)
    var total = 0
    do {
        for try await element in upstream {
            encode(element, &buffer)
            if buffer.count >= flushThreshold {
                try await file.write(buffer)
                total += buffer.count
                buffer.removeAll(keepingCapacity: true)
            }
        }
        if !buffer.isEmpty {
            try await file.write(buffer)
            total += buffer.count
        }
        try await file.close()
        return total
    } catch {
        // Keep what the stream produced before it failed, then report its error.
        if !buffer.isEmpty { try? await file.write(buffer) }
        try? await file.close()
        throw error
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif
