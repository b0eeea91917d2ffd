import Foundation

/// One stdin line of `rkafka produce`, split into key and value.
///
/// Without a key separator the whole line is the value and the key is null. With one,
/// the key is the text before its first occurrence and the value everything after it
/// (further separators stay in the value), like `kafka-console-producer --property
/// parse.key=true`. A line without the separator is an error rather than a guess.
struct LineRecord: Equatable, Sendable {
    let key: Substring?
    let value: Substring

    init(key: Substring?, value: Substring) {
        self.key = key
        self.value = value
    }

    /// Splits `line` (without its newline); `lineNumber` (1-based) is quoted in errors.
    init(parsing line: String, keySeparator: String?, lineNumber: Int) throws(LineRecordError) {
        guard let keySeparator else {
            self.init(key: nil, value: line[...])
            return
        }
        guard let range = line.range(of: keySeparator) else {
            throw LineRecordError(lineNumber: lineNumber, separator: keySeparator)
        }
        self.init(key: line[..<range.lowerBound], value: line[range.upperBound...])
    }
}

/// A stdin line that lacks the key separator.
struct LineRecordError: Error, Equatable, CustomStringConvertible {
    let lineNumber: Int
    let separator: String

    var description: String {
        "line \(lineNumber) has no key separator \(separator.debugDescription): with --key-separator every line "
            + "must be KEY\(separator)VALUE (leave the option out to send whole lines as values with null keys)"
    }
}
