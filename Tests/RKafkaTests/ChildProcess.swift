import Foundation
import Synchronization
import Testing

@testable import rkafka

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The `rkafka` executable SwiftPM built next to this test bundle (`swift test` builds it).
enum RKafkaExecutable {
    static func url() throws -> URL {
        let bundleDirectory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            .deletingLastPathComponent()
        let candidate = bundleDirectory.appendingPathComponent("rkafka")
        guard FileManager.default.isExecutableFile(atPath: candidate.path) else {
            throw ChildProcessError(
                "the rkafka executable is missing at \(candidate.path): build it first (`swift build --product rkafka`; `swift test` builds it)"
            )
        }
        return candidate
    }
}

/// A failure to start or supervise a child process.
struct ChildProcessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A child process whose stdout is read line by line on a dedicated thread (blocking reads
/// there, never on the Swift pool) and whose stderr goes to a file, for diagnostics.
final class ChildProcess: @unchecked Sendable {
    let name: String
    let stderrFile: URL
    private let process = Process()
    private let completion = Completion()

    /// Starts `executable` with `arguments`; `onLines` receives complete stdout lines in
    /// batches, on the reader thread. A final line without a newline (a process killed mid-write)
    /// is passed to `onTornLine` instead.
    init(
        _ executable: URL, _ arguments: [String], name: String, directory: URL,
        onLines: @escaping @Sendable ([Substring]) -> Void, onTornLine: @escaping @Sendable (String) -> Void = { _ in }
    ) throws {
        self.name = name
        self.stderrFile = directory.appendingPathComponent("\(name).stderr")
        _ = FileManager.default.createFile(atPath: stderrFile.path, contents: nil)
        process.executableURL = executable
        process.arguments = arguments
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardError = try FileHandle(forWritingTo: stderrFile)
        process.standardInput = FileHandle.nullDevice
        let completion = self.completion
        process.terminationHandler = { process in
            completion.update {
                $0.status = process.terminationStatus
                $0.exited = process.terminationReason == .exit
            }
        }
        try process.run()
        let fd = stdout.fileHandleForReading.fileDescriptor
        let thread = Thread {
            Self.readLines(fd, onLines: onLines, onTornLine: onTornLine)
            completion.update { $0.stdoutClosed = true }
            withExtendedLifetime(stdout) {}
        }
        thread.name = "child-\(name)-stdout"
        thread.start()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { completion.status == nil }

    /// Blocks until the process has exited (after a SIGKILL: moments); Foundation's `Process`
    /// lets go of itself only once it has seen its child end.
    func reap() {
        process.waitUntilExit()
    }

    /// Sends `signal` (SIGTERM: drain and leave; SIGKILL: crash) unless the process has exited.
    func send(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    /// Waits until the process has exited and its stdout is fully read, at most `timeout`;
    /// returns its exit status and whether it exited (rather than died from a signal), or nil
    /// on timeout.
    func waitForExit(timeout: Duration) async -> (status: Int32, exited: Bool)? {
        guard await completion.waitUntilFinished(timeout: timeout) else { return nil }
        return (completion.status ?? -1, completion.exited)
    }

    /// The last `bytes` of the process's stderr, for failure messages.
    func stderrTail(_ bytes: Int = 2000) -> String {
        guard let data = FileManager.default.contents(atPath: stderrFile.path) else { return "(no stderr)" }
        return String(decoding: data.suffix(bytes), as: UTF8.self)
    }

    private static func readLines(_ fd: Int32, onLines: ([Substring]) -> Void, onTornLine: (String) -> Void) {
        var pending: [UInt8] = []
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 1)
        defer { buffer.deallocate() }
        while true {
            let n = read(fd, buffer.baseAddress, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            pending.append(contentsOf: buffer[0..<n])
            guard let lastNewline = pending.lastIndex(of: UInt8(ascii: "\n")) else { continue }
            let text = String(decoding: pending[...lastNewline], as: UTF8.self)
            pending.removeSubrange(...lastNewline)
            onLines(text.split(separator: "\n", omittingEmptySubsequences: true))
        }
        if !pending.isEmpty { onTornLine(String(decoding: pending, as: UTF8.self)) }
    }
}

/// When a child is finished: it exited and its stdout is read to the end.
private final class Completion: Sendable {
    struct State: Sendable {
        var status: Int32?
        var exited = false
        var stdoutClosed = false
        var finished: Bool { status != nil && stdoutClosed }
    }
    private let state = WatchedSnapshot(State())

    var status: Int32? { state.snapshot.status }
    var exited: Bool { state.snapshot.exited }

    /// Applies `change`; waiters resume once the process is finished.
    func update(_ change: (inout State) -> Void) {
        state.update(change)
    }

    /// True once finished; false after `timeout`.
    func waitUntilFinished(timeout: Duration) async -> Bool {
        await state.wait(timeout: timeout) { $0.finished }
    }
}

/// Every child a test started: `killAll()` (in a `defer`) SIGKILLs those still running, so that
/// a failing or throwing test leaves no process behind.
final class ChildProcesses: Sendable {
    private let children = Mutex<[ChildProcess]>([])

    func add(_ child: ChildProcess) -> ChildProcess {
        children.withLock { $0.append(child) }
        return child
    }

    /// SIGKILLs the children still running and waits until each has exited: Foundation's
    /// `Process` holds itself (through its run-loop source) until it has seen its child end, so a
    /// child left unreaped leaked its `Process` and everything it refers to (LeakSanitizer).
    func killAll() {
        let all = children.withLock { $0 }
        for child in all { child.send(SIGKILL) }
        for child in all { child.reap() }
    }

    deinit { killAll() }
}
