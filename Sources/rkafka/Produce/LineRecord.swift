import Foundation
import ReactiveKafka
import Synchronization

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

/// The records `rkafka produce` writes: one a stdin line, parsed with ``LineRecord``.
/// Fails with ``LineRecordError`` at the first line without the key separator.
struct LineRecords: AsyncSequence, Sendable {
    typealias Element = ProducerRecord<String, String>

    let lines: LineBatches
    let topic: String
    let keySeparator: String?
    /// Lines turned into records so far, for the summary.
    let parsed: LineCounter

    struct AsyncIterator: AsyncIteratorProtocol {
        var batches: LineBatches.AsyncIterator
        let base: LineRecords
        var batch: [String] = []
        var index = 0
        var lineNumber = 0

        mutating func next() async throws -> Element? {
            while index == batch.count {
                guard let next = await batches.next() else { return nil }
                batch = next
                index = 0
            }
            let line = batch[index]
            index += 1
            lineNumber += 1
            let record = try LineRecord(parsing: line, keySeparator: base.keySeparator, lineNumber: lineNumber)
            base.parsed.increment()
            return ProducerRecord(topic: base.topic, key: record.key.map(String.init), value: String(record.value))
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(batches: lines.makeAsyncIterator(), base: self) }
}

/// A count shared between the stream and the command's summary.
final class LineCounter: Sendable {
    private let count = Atomic<Int>(0)
    func increment() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}
