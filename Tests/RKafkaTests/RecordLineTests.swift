import Foundation
import ReactiveKafka
import Testing

@testable import rkafka

@Suite struct RecordLineTests {
    typealias Record = ConsumerRecord<KafkaBytes?, KafkaBytes?>

    /// Parses a JSON line back, so the tests check what a JSON reader sees.
    func parse(_ line: String) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    @Test func jsonLineCarriesEveryField() throws {
        let record = Record(
            topic: "orders", partition: 3, offset: 42, timestamp: KafkaTimestamp(milliseconds: 1_700_000_000_123),
            key: KafkaBytes("k1"), value: KafkaBytes("v1"),
            headers: [KafkaHeader(key: "trace", value: KafkaBytes("abc")), KafkaHeader(key: "trace", value: nil)])
        let line = RecordLine.line(record, format: .json)
        #expect(
            line
                == #"{"topic":"orders","partition":3,"offset":42,"timestamp":1700000000123,"key":"k1","value":"v1","headers":[{"key":"trace","value":"abc"},{"key":"trace","value":null}]}"#
        )
        let object = try parse(line)
        #expect(object["partition"] as? Int == 3)
        #expect((object["headers"] as? [[String: Any]])?.count == 2, "repeated header names are all kept")
    }

    @Test func nullKeyValueAndTimestampAreJSONNull() throws {
        let record = Record(topic: "t", partition: 0, offset: 0, key: nil, value: nil)
        let object = try parse(RecordLine.line(record, format: .json))
        #expect(object["key"] is NSNull)
        #expect(object["value"] is NSNull)
        #expect(object["timestamp"] is NSNull)
        #expect((object["headers"] as? [Any])?.isEmpty == true)
        // An empty value is not a null one.
        let empty = try parse(
            RecordLine.line(
                Record(topic: "t", partition: 0, offset: 1, key: KafkaBytes(""), value: KafkaBytes()), format: .json))
        #expect(empty["key"] as? String == "")
        #expect(empty["value"] as? String == "")
    }

    @Test func escapesQuotesBackslashesAndControlCharacters() throws {
        let nasty = "say \"hi\"\\\n\tend\r\u{01}\u{7F}é😀"
        let record = Record(
            topic: "we\"ird", partition: 0, offset: 7, key: KafkaBytes("a\nb"), value: KafkaBytes(nasty),
            headers: [KafkaHeader(key: "h\"1", value: KafkaBytes("x\\y"))])
        let line = RecordLine.line(record, format: .json)
        #expect(!line.contains("\n"), "one object a line")
        #expect(line.contains(#"\u0001"#))
        let object = try parse(line)
        #expect(object["topic"] as? String == "we\"ird")
        #expect(object["key"] as? String == "a\nb")
        #expect(object["value"] as? String == nasty)
        let header = try #require((object["headers"] as? [[String: Any]])?.first)
        #expect(header["key"] as? String == "h\"1")
        #expect(header["value"] as? String == "x\\y")
    }

    @Test func invalidUTF8IsRepairedIntoValidJSON() throws {
        let record = Record(topic: "t", partition: 0, offset: 0, key: nil, value: KafkaBytes([0x61, 0xFF, 0x62]))
        let object = try parse(RecordLine.line(record, format: .json))
        #expect(object["value"] as? String == "a\u{FFFD}b")
    }

    @Test func textLineIsTheValue() {
        #expect(
            RecordLine.line(
                Record(topic: "t", partition: 0, offset: 0, key: KafkaBytes("k"), value: KafkaBytes("hello")),
                format: .text) == "hello")
        #expect(RecordLine.line(Record(topic: "t", partition: 0, offset: 0, key: nil, value: nil), format: .text) == "")
    }
}
