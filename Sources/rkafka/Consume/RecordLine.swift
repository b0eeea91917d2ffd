import ReactiveKafka

/// How `rkafka consume` prints a record: one line each.
enum RecordLineFormat: String, CaseIterable, Sendable {
    /// The value only (an empty line for a null value), like kafka-console-consumer.
    case text
    /// One JSON object a line: topic, partition, offset, timestamp, key, value, headers.
    case json
}

/// Formats consumed records as lines, appending UTF-8 straight into an output
/// buffer (no intermediate `String` per record).
///
/// JSON lines are `{"topic":…,"partition":…,"offset":…,"timestamp":…,"key":…,"value":…,"headers":[{"key":…,"value":…}]}`:
/// `timestamp` is milliseconds since the epoch or null; null keys, values and
/// header values are JSON null; bytes are read as UTF-8 (invalid sequences
/// become U+FFFD). Headers are an array because a name may repeat.
enum RecordLine {
    typealias Record = ConsumerRecord<KafkaBytes?, KafkaBytes?>

    /// Appends `record` and a newline to `buffer`.
    static func append(_ record: Record, format: RecordLineFormat, to buffer: inout [UInt8]) {
        switch format {
        case .text:
            if let value = record.value { appendLossyUTF8(value, to: &buffer) }
        case .json:
            appendJSON(record, to: &buffer)
        }
        buffer.append(UInt8(ascii: "\n"))
    }

    /// The line for `record`, without its newline (for tests and messages).
    static func line(_ record: Record, format: RecordLineFormat) -> String {
        var buffer: [UInt8] = []
        append(record, format: format, to: &buffer)
        buffer.removeLast()
        return String(decoding: buffer, as: UTF8.self)
    }

    private static func appendJSON(_ record: Record, to buffer: inout [UInt8]) {
        buffer.append(contentsOf: #"{"topic":"#.utf8)
        appendJSONString(record.topic.utf8, to: &buffer)
        buffer.append(contentsOf: #","partition":"#.utf8)
        buffer.append(contentsOf: String(record.partition).utf8)
        buffer.append(contentsOf: #","offset":"#.utf8)
        buffer.append(contentsOf: String(record.offset).utf8)
        buffer.append(contentsOf: #","timestamp":"#.utf8)
        if let timestamp = record.timestamp {
            buffer.append(contentsOf: String(timestamp.milliseconds).utf8)
        } else {
            buffer.append(contentsOf: "null".utf8)
        }
        buffer.append(contentsOf: #","key":"#.utf8)
        appendJSONBytes(record.key, to: &buffer)
        buffer.append(contentsOf: #","value":"#.utf8)
        appendJSONBytes(record.value, to: &buffer)
        buffer.append(contentsOf: #","headers":["#.utf8)
        for (index, header) in record.headers.enumerated() {
            if index > 0 { buffer.append(UInt8(ascii: ",")) }
            buffer.append(contentsOf: #"{"key":"#.utf8)
            appendJSONString(header.key.utf8, to: &buffer)
            buffer.append(contentsOf: #","value":"#.utf8)
            appendJSONBytes(header.value, to: &buffer)
            buffer.append(UInt8(ascii: "}"))
        }
        buffer.append(contentsOf: "]}".utf8)
    }

    private static func appendJSONBytes(_ bytes: KafkaBytes?, to buffer: inout [UInt8]) {
        guard let bytes else {
            buffer.append(contentsOf: "null".utf8)
            return
        }
        bytes.withUnsafeBytes { raw in
            let raw = UnsafeBufferPointer(start: raw.baseAddress?.assumingMemoryBound(to: UInt8.self), count: raw.count)
            // Valid UTF-8 (the common case) is escaped in place; anything else is repaired first.
            if String(validating: raw, as: UTF8.self) != nil {
                appendJSONString(raw, to: &buffer)
            } else {
                appendJSONString(String(decoding: raw, as: UTF8.self).utf8, to: &buffer)
            }
        }
    }

    private static func appendLossyUTF8(_ bytes: KafkaBytes, to buffer: inout [UInt8]) {
        bytes.withUnsafeBytes { raw in
            let raw = UnsafeBufferPointer(start: raw.baseAddress?.assumingMemoryBound(to: UInt8.self), count: raw.count)
            if String(validating: raw, as: UTF8.self) != nil {
                buffer.append(contentsOf: raw)
            } else {
                buffer.append(contentsOf: String(decoding: raw, as: UTF8.self).utf8)
            }
        }
    }

    /// Appends `utf8` (valid UTF-8) as a JSON string: quotes, backslashes and
    /// control characters escaped, everything else copied.
    static func appendJSONString<S: Sequence<UInt8>>(_ utf8: S, to buffer: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        buffer.append(UInt8(ascii: "\""))
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "\""): buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x08: buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x0C: buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0..<0x20, 0x7F:
                buffer.append(contentsOf: "\\u00".utf8)
                buffer.append(hex[Int(byte >> 4)])
                buffer.append(hex[Int(byte & 0xF)])
            default: buffer.append(byte)
            }
        }
        buffer.append(UInt8(ascii: "\""))
    }
}
