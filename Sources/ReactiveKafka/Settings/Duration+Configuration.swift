/// Why a configuration value could not be read as a duration.
enum ConfigDurationError: Error, Equatable, Sendable {
    /// Not a number followed by a known unit.
    case notADuration
    /// A leading minus sign: no connector duration may be negative.
    case negative
    /// More than `Int64.max` nanoseconds (about 292 years).
    case tooLarge
}

/// Parses durations written the way Alpakka's HOCON files write them:
/// a non-negative number, optionally with a fraction, optionally followed by a
/// unit; a bare number is milliseconds (HOCON's rule, so `commit-timeout = 5000`
/// means the same in both worlds).
///
/// Units (case-insensitive): `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`, `d` and
/// their spelled-out forms (`nanos`, `micros`, `millis`, `seconds`, `minutes`,
/// `hours`, `days`, singular or plural). Whitespace between number and unit is allowed.
/// Arithmetic is exact to the nanosecond (`0.1s` is exactly 100 ms).
enum ConfigDurationParser {
    /// The duration `text` describes.
    static func parse(_ text: String) throws(ConfigDurationError) -> Duration {
        var rest = text.trimmingConfigWhitespace()
        if rest.first == "-" { throw .negative }
        let integerDigits = rest.prefix(while: \.isASCIIDigit)
        rest = rest.dropFirst(integerDigits.count)
        var fractionDigits: Substring = ""
        if rest.first == "." {
            rest = rest.dropFirst()
            fractionDigits = rest.prefix(while: \.isASCIIDigit)
            rest = rest.dropFirst(fractionDigits.count)
        }
        guard !integerDigits.isEmpty || !fractionDigits.isEmpty else { throw .notADuration }
        guard let unit = unitNanoseconds(rest.trimmingConfigWhitespace().lowercased()) else { throw .notADuration }

        // value = (integer * 10^k + fraction) / 10^k, computed in Int128 with overflow checks: huge input is an error, never a trap.
        let scaleDigits = min(fractionDigits.count, 18)
        var scale: Int128 = 1
        for _ in 0..<scaleDigits { scale *= 10 }
        guard integerDigits.count <= 20, let integer = Int128(integerDigits.isEmpty ? "0" : String(integerDigits)),
            let fraction = Int128(fractionDigits.isEmpty ? "0" : String(fractionDigits.prefix(scaleDigits)))
        else { throw .tooLarge }
        let (scaled, overflow1) = integer.multipliedReportingOverflow(by: scale)
        let (total, overflow2) = (scaled + fraction).multipliedReportingOverflow(by: unit)
        guard !overflow1, !overflow2 else { throw .tooLarge }
        let nanoseconds = total / scale
        guard nanoseconds <= Int128(Int64.max) else { throw .tooLarge }
        return .nanoseconds(Int64(nanoseconds))
    }

    /// A bare integer read from a typed source (JSON number, YAML int): milliseconds.
    static func milliseconds(_ value: Int) throws(ConfigDurationError) -> Duration {
        guard value >= 0 else { throw .negative }
        guard value <= Int64.max / 1_000_000 else { throw .tooLarge }
        return .milliseconds(value)
    }

    private static func unitNanoseconds(_ unit: String) -> Int128? {
        switch unit {
        case "": 1_000_000
        case "ns", "nano", "nanos", "nanosecond", "nanoseconds": 1
        case "us", "µs", "micro", "micros", "microsecond", "microseconds": 1_000
        case "ms", "milli", "millis", "millisecond", "milliseconds": 1_000_000
        case "s", "sec", "secs", "second", "seconds": 1_000_000_000
        case "m", "min", "mins", "minute", "minutes": 60_000_000_000
        case "h", "hour", "hours": 3_600_000_000_000
        case "d", "day", "days": 86_400_000_000_000
        default: nil
        }
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}

extension StringProtocol {
    /// Without leading and trailing whitespace.
    func trimmingConfigWhitespace() -> SubSequence {
        guard let first = firstIndex(where: { !$0.isWhitespace }), let last = lastIndex(where: { !$0.isWhitespace })
        else { return self[endIndex...] }
        return self[first...last]
    }
}
