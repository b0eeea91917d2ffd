import Foundation
import ReactiveKafka
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension FraudScenario {
    /// The child's side of ``Kill/childProcess(executable:arguments:)``: runs the detector on
    /// `bootstrapServers`, prints each committed checkpoint as `committed ALERTS WINDOWS
    /// TRANSACTIONS`, and right after the first commit that takes it to `afterOutputs`
    /// outputs sends this process SIGKILL. Returns only if the input ends before that.
    public static func runDetectorThenKillThisProcess(bootstrapServers: String, afterOutputs: Int) async throws {
        let detector = FraudDetector(bootstrapServers: bootstrapServers)
        _ = try await detector.run { checkpoint in
            let line = "committed \(checkpoint.alerts) \(checkpoint.windows) \(checkpoint.transactions)\n"
            FileHandle.standardOutput.write(Data(line.utf8))
            if checkpoint.alerts + checkpoint.windows >= afterOutputs { kill(getpid(), SIGKILL) }
        }
    }

    /// Starts the child, waits (at most 60 s) for it to die, requires that SIGKILL killed it,
    /// and returns the last checkpoint it printed.
    static func runKilledChild(_ executable: URL, _ arguments: [String]) async throws -> FraudCheckpoint {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardInput = FileHandle.nullDevice
        let exited = ProcessExit()
        process.terminationHandler = { _ in exited.signal() }
        try process.run()
        let pid = process.processIdentifier
        // SIGTERM, not SIGKILL: a child stopped this way fails the check below.
        let watchdog = Task {
            try await Task.sleep(for: .seconds(60))
            kill(pid, SIGTERM)
        }
        await withTaskCancellationHandler {
            await exited.wait()
        } onCancel: {
            kill(pid, SIGTERM)
        }
        watchdog.cancel()
        // A few dozen short lines: the pipe's buffer held them until the child was gone.
        let lines = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .split(separator: "\n")
        guard process.terminationReason == .uncaughtSignal, process.terminationStatus == SIGKILL else {
            throw FraudScenarioError(
                "the detector's child process ended with status \(process.terminationStatus) instead of being killed; output: \(lines.suffix(3))"
            )
        }
        guard let last = lines.last, case let words = last.split(separator: " "), words.count == 4,
            words[0] == "committed", let alerts = Int(words[1]), let windows = Int(words[2]),
            let transactions = Int(words[3])
        else {
            throw FraudScenarioError("the killed detector printed no checkpoint; output: \(lines.suffix(3))")
        }
        return FraudCheckpoint(alerts: alerts, windows: windows, transactions: transactions)
    }
}

/// The end of a child process, awaited once.
final class ProcessExit: Sendable {
    private let state = Mutex<(exited: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    /// The process has exited (its termination handler).
    func signal() {
        let waiter = state.withLock { state in
            state.exited = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Returns once the process has exited.
    func wait() async {
        await withCheckedContinuation { continuation in
            let exited = state.withLock { state in
                if !state.exited { state.waiter = continuation }
                return state.exited
            }
            if exited { continuation.resume() }
        }
    }
}
