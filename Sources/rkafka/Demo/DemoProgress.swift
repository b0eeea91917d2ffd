import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The produce phase's progress on stderr: a bar redrawn in place on a
/// terminal, a line every 10% otherwise (logs, pipes).
struct DemoProgressBar: Sendable {
    let total: Int
    let width = 40
    let interactive = isatty(STDERR_FILENO) != 0

    /// The bar for `done` of ``total``, e.g. `[######..........]  37%`.
    func bar(_ done: Int) -> String {
        let fraction = total == 0 ? 1 : Double(min(done, total)) / Double(total)
        let filled = Int((fraction * Double(width)).rounded(.down))
        return "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
            + String(format: "%3d%%", Int((fraction * 100).rounded(.down)))
    }

    /// Reports `done`; `lastDecile` remembers what was already printed in line mode.
    func report(_ done: Int, lastDecile: inout Int) {
        if interactive {
            writeStderr("\r" + bar(done) + " \(done)/\(total)")
        } else {
            let decile = total == 0 ? 10 : min(done, total) * 10 / total
            guard decile > lastDecile else { return }
            lastDecile = decile
            printError(bar(done) + " \(done)/\(total)")
        }
    }

    /// Ends the bar's line on a terminal.
    func finish() {
        if interactive { writeStderr("\n") }
    }

    private func writeStderr(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}
