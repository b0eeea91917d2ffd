import AsyncAlgorithms
import Testing

@testable import StreamKit

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

private func temporaryPath(_ name: String) -> String {
    "/tmp/streamkit-test-\(getpid())-\(name)"
}

@Suite(.timeLimit(.minutes(1))) struct FileIOTests {
    @Test func linesRoundTripThroughAFile() async throws {
        let path = temporaryPath("lines")
        defer { unlink(path) }
        let written = try await Source((1...20_000).async).run(into: Sinks.lines(toFile: path, Int.self))
        let expected = (1...20_000).map(String.init)
        #expect(written == expected.reduce(0) { $0 + $1.utf8.count + 1 })
        // Small chunks: lines cross chunk boundaries.
        let back = try await FileSource(path: path, chunkSize: 7).lines().collect()
        #expect(back == expected)
    }

    @Test func bytesAreWrittenAsIsAndReadInChunks() async throws {
        let path = temporaryPath("bytes")
        defer { unlink(path) }
        let payload: [[UInt8]] = [[1, 2, 3], [], [4, 5]]
        _ = try await Source(payload.async).run(into: Sinks.bytes(toFile: path, [UInt8].self))
        let chunks = try await FileSource(path: path, chunkSize: 2).collect()
        #expect(chunks == [[1, 2], [3, 4], [5]])
    }

    @Test func appendKeepsWhatWasThere() async throws {
        let path = temporaryPath("append")
        defer { unlink(path) }
        try await ["a"].async.writeLines(toFile: path)
        try await ["b"].async.writeLines(toFile: path, append: true)
        #expect(try await FileSource(path: path).lines().collect() == ["a", "b"])
    }

    @Test func anUpstreamErrorKeepsTheWrittenPrefixAndIsRethrown() async throws {
        let path = temporaryPath("error")
        defer { unlink(path) }
        await #expect(throws: TestError(tag: 3)) {
            try await ProbedSequence(count: 10, probe: Probe(), failAt: 3).writeLines(toFile: path)
        }
        #expect(try await FileSource(path: path).lines().collect() == ["0", "1", "2"])
    }

    @Test func aMissingFileFailsWithATypedError() async throws {
        await #expect(throws: StreamKitError.io(operation: "open", path: "/nonexistent/dir/file", errno: ENOENT)) {
            _ = try await FileSource(path: "/nonexistent/dir/file").collect()
        }
        await #expect(throws: StreamKitError.self) {
            try await ["x"].async.writeLines(toFile: "/nonexistent/dir/file")
        }
    }
}
