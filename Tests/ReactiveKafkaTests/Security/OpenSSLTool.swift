import Foundation
import Synchronization

/// The `openssl` command line tool, which the TLS tests use to make certificates and to run a
/// TLS listener (`s_server`); the tests are skipped where it (or `stdbuf`) is missing.
enum OpenSSLTool {
    static let openssl = executable("openssl")
    /// Makes `s_server` write each line as it comes (its output is a pipe, which libc buffers).
    static let stdbuf = executable("stdbuf")
    static var isAvailable: Bool { openssl != nil && stdbuf != nil }

    private static func executable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
    }

    /// Runs `openssl arguments…` in `directory` and returns once it exited, throwing its error output if it failed.
    static func run(_ arguments: [String], in directory: URL) async throws {
        guard let openssl else { throw ToolFailure(description: "openssl is not installed") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: openssl)
        process.arguments = arguments
        process.currentDirectoryURL = directory
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        let status = try await withCheckedThrowingContinuation {
            (continuation: CheckedContinuation<Int32, any Error>) in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do { try process.run() } catch { continuation.resume(throwing: error) }
        }
        guard status == 0 else {
            let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw ToolFailure(description: "openssl \(arguments.joined(separator: " ")) failed (\(status)): \(text)")
        }
    }
}

struct ToolFailure: Error, CustomStringConvertible {
    let description: String
}

/// A CA, certificates it signed for a broker on `localhost` and for `elsewhere.example`, a client
/// certificate with its key in clear and encrypted, and a second CA that signed none of them,
/// in a temporary directory of their own (the caller removes it).
struct TestCertificates: Sendable {
    let directory: URL
    static let keyPassword = "client-key-pass"

    func url(_ name: String) -> URL { directory.appendingPathComponent(name) }
    func path(_ name: String) -> String { url(name).path }
    func text(_ name: String) throws -> String { try String(contentsOf: url(name), encoding: .utf8) }

    static func make() async throws -> TestCertificates {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rk-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        func run(_ arguments: String...) async throws { try await OpenSSLTool.run(arguments, in: directory) }
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        for ca in ["ca", "other-ca"] {
            try await OpenSSLTool.run(
                ["req", "-x509"] + ec + [
                    "-keyout", "\(ca).key", "-out", "\(ca).pem", "-days", "2", "-subj", "/CN=rk-test-\(ca)",
                ], in: directory)
        }
        let signed = [
            ("localhost", "DNS:localhost,IP:127.0.0.1"), ("elsewhere", "DNS:elsewhere.example"), ("client", nil),
        ]
        for (name, altNames) in signed {
            let subject =
                name == "client"
                ? "/CN=rk-test-client" : "/CN=\(name == "localhost" ? "localhost" : "elsewhere.example")"
            try await OpenSSLTool.run(
                ["req"] + ec + ["-keyout", "\(name).key", "-out", "\(name).csr", "-subj", subject], in: directory)
            var sign = [
                "x509", "-req", "-in", "\(name).csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
                "\(name).pem", "-days", "2",
            ]
            if let altNames {
                try "subjectAltName=\(altNames)\n".write(
                    to: directory.appendingPathComponent("\(name).ext"), atomically: true, encoding: .utf8)
                sign += ["-extfile", "\(name).ext"]
            }
            try await OpenSSLTool.run(sign, in: directory)
        }
        try await run(
            "pkcs8", "-topk8", "-in", "client.key", "-out", "client-encrypted.key", "-passout", "pass:\(keyPassword)")
        return TestCertificates(directory: directory)
    }
}

/// `openssl s_server` listening on 127.0.0.1 with a certificate, asking clients for theirs
/// when given the CA that must have signed it. It speaks TLS only (no Kafka): a client's TLS
/// handshake completes or fails, which its output shows, and then nothing answers its requests.
final class OpenSSLServer: Sendable {
    private let process: Process
    /// Kept open: `s_server` stops when its input ends.
    private let input: Pipe
    private let output: OutputCollector
    private let exited: ExitSignal
    let port: Int

    private init(process: Process, input: Pipe, output: OutputCollector, exited: ExitSignal, port: Int) {
        self.process = process
        self.input = input
        self.output = output
        self.exited = exited
        self.port = port
    }

    static func start(certificate: String, key: String, clientCA: String? = nil) async throws -> OpenSSLServer {
        guard let stdbuf = OpenSSLTool.stdbuf, let openssl = OpenSSLTool.openssl else {
            throw ToolFailure(description: "openssl or stdbuf missing")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: stdbuf)
        var arguments = [
            "-o0", "-e0", openssl, "s_server", "-accept", "127.0.0.1:0", "-cert", certificate, "-key", key,
        ]
        if let clientCA { arguments += ["-Verify", "1", "-verify_return_error", "-CAfile", clientCA] }
        process.arguments = arguments
        let input = Pipe()
        let out = Pipe()
        let collector = OutputCollector()
        process.standardInput = input
        process.standardOutput = out
        process.standardError = out
        out.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty { handle.readabilityHandler = nil } else { collector.append(data) }
        }
        let exited = ExitSignal()
        process.terminationHandler = { _ in exited.signal() }
        try process.run()
        let server = OpenSSLServer(process: process, input: input, output: collector, exited: exited, port: 0)
        let line: String
        do {
            line = try await withTimeout(seconds: 10) { try await collector.line(containing: "ACCEPT 127.0.0.1:") }
        } catch {
            await server.stop()
            throw error
        }
        guard let port = line.split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) })
        else {
            await server.stop()
            throw ToolFailure(description: "s_server printed no port: \(line)")
        }
        return OpenSSLServer(process: process, input: input, output: collector, exited: exited, port: port)
    }

    /// Returns the first line of output containing `text`, once there is one (within a bound).
    func waitFor(_ text: String, seconds: Double = 10) async throws -> String {
        let output = output
        return try await withTimeout(seconds: seconds) { try await output.line(containing: text) }
    }

    /// Everything `s_server` printed so far.
    var printed: String { output.text }

    /// Ends `s_server` (SIGKILL: it may inherit SIGTERM ignored from the test runner) and waits until it exited.
    func stop() async {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        await exited.wait()
        try? input.fileHandleForWriting.close()
    }
}

/// A process's exit, awaited by any number of tasks.
final class ExitSignal: Sendable {
    private let state = Mutex<(exited: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func signal() {
        let waiters = state.withLock { s in
            s.exited = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let exited = state.withLock { s -> Bool in
                if !s.exited { s.waiters.append(continuation) }
                return s.exited
            }
            if exited { continuation.resume() }
        }
    }
}

/// Text a process printed, and waiters for a line holding some text.
final class OutputCollector: Sendable {
    private struct Waiter {
        let needle: String
        let continuation: CheckedContinuation<String, any Error>
    }

    private struct State {
        var text = ""
        var waiters: [UUID: Waiter] = [:]
    }

    private let state = Mutex(State())

    var text: String { state.withLock { $0.text } }

    func append(_ data: Data) {
        let resumed = state.withLock { s -> [(Waiter, String)] in
            s.text += String(decoding: data, as: UTF8.self)
            var found: [(Waiter, String)] = []
            for (id, waiter) in s.waiters {
                if let line = Self.line(containing: waiter.needle, in: s.text) {
                    found.append((waiter, line))
                    s.waiters.removeValue(forKey: id)
                }
            }
            return found
        }
        for (waiter, line) in resumed { waiter.continuation.resume(returning: line) }
    }

    func line(containing needle: String) async throws -> String {
        enum Outcome {
            case found(String)
            case cancelled, waiting
        }
        let id = UUID()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<String, any Error>) in
                let outcome = state.withLock { s -> Outcome in
                    if let line = Self.line(containing: needle, in: s.text) { return .found(line) }
                    if Task.isCancelled { return .cancelled }
                    s.waiters[id] = Waiter(needle: needle, continuation: continuation)
                    return .waiting
                }
                switch outcome {
                case .found(let line): continuation.resume(returning: line)
                case .cancelled: continuation.resume(throwing: CancellationError())
                case .waiting: break
                }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.continuation.resume(throwing: CancellationError())
        }
    }

    /// The whole line (up to its newline) in which `needle` first appears.
    private static func line(containing needle: String, in text: String) -> String? {
        guard let range = text.range(of: needle) else { return nil }
        let start = text[..<range.lowerBound].lastIndex(of: "\n").map { text.index(after: $0) } ?? text.startIndex
        let end = text[range.upperBound...].firstIndex(of: "\n") ?? text.endIndex
        guard end != text.endIndex else { return nil } // the line is not complete yet
        return String(text[start..<end])
    }
}
