import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One test of this test bundle run again, alone, in a child process: for measurements of
/// the whole process (its resident set) that suites running beside it in the same process
/// would distort. Linux only (the bundle is found through `/proc/self/exe`).
struct ChildTestRun {
    /// The child's exit status: non-zero when one of its expectations failed.
    var status: Int32
    /// The child's stdout and stderr, interleaved.
    var output: String
    /// What the child wrote to the file named in its `reportVariable`.
    var report: String

    /// Runs the tests `filter` selects (a Swift Testing `--filter`) in a new process of this
    /// bundle, with `environment` added and `reportVariable` naming a file the child may write
    /// its figures to. After `timeout` the child is killed (its status then says so).
    static func run(test filter: String, environment: [String: String], reportVariable: String, timeout: Duration)
        async throws -> ChildTestRun
    {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("child-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let outputFile = directory.appendingPathComponent("output")
        let reportFile = directory.appendingPathComponent("report")
        FileManager.default.createFile(atPath: outputFile.path, contents: nil)
        let output = try FileHandle(forWritingTo: outputFile)
        defer { try? output.close() }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = ["--testing-library", "swift-testing", "--filter", filter]
        var childEnvironment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        childEnvironment[reportVariable] = reportFile.path
        process.environment = childEnvironment
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        // The exit is awaited, not waited for: waitUntilExit would block a cooperative thread.
        let (exited, exit) = AsyncStream<Int32>.makeStream()
        process.terminationHandler = { process in
            exit.yield(process.terminationStatus)
            exit.finish()
        }
        try process.run()
        let watchdog = Task {
            try await Task.sleep(for: timeout)
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        var status: Int32 = -1
        for await code in exited { status = code }
        watchdog.cancel()
        return ChildTestRun(
            status: status,
            output: (try? String(contentsOf: outputFile, encoding: .utf8)) ?? "",
            report: ((try? String(contentsOf: reportFile, encoding: .utf8)) ?? "").trimmingCharacters(
                in: .whitespacesAndNewlines))
    }
}
