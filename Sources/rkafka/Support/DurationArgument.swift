import ArgumentParser
import Foundation

/// A duration on the command line: a number and a unit, `500ms`, `5s`, `1.5m`, `1h`.
struct DurationArgument: ExpressibleByArgument, Sendable, CustomStringConvertible {
    let duration: Duration
    let description: String

    /// `duration`, shown as `description`.
    init(_ duration: Duration, description: String) {
        self.duration = duration
        self.description = description
    }

    init?(argument: String) {
        let text = argument.trimmingCharacters(in: .whitespaces)
        let number = text.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
        let scale: Double
        switch text.dropFirst(number.count) {
        case "ms": scale = 0.001
        case "s": scale = 1
        case "m": scale = 60
        case "h": scale = 3600
        default: return nil
        }
        // Up to a year: anything longer is a typo, and the milliseconds stay far from overflowing.
        guard let value = Double(number), value.isFinite, value >= 0, value * scale <= 366 * 86_400 else { return nil }
        self.duration = .milliseconds(Int64((value * scale * 1000).rounded()))
        self.description = text
    }
}

extension Duration {
    /// Seconds as a `Double`, for metrics and arithmetic.
    var inSeconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
