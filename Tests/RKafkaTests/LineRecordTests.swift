import Testing

@testable import rkafka

@Suite struct LineRecordTests {
    @Test func withoutSeparatorTheWholeLineIsTheValueAndTheKeyIsNull() throws {
        let record = try LineRecord(parsing: "a:b c", keySeparator: nil, lineNumber: 1)
        #expect(record.key == nil)
        #expect(record.value == "a:b c")
    }

    @Test func splitsAtTheFirstSeparatorOnly() throws {
        let record = try LineRecord(parsing: "user-1:{\"a\":1}", keySeparator: ":", lineNumber: 1)
        #expect(record.key == "user-1")
        #expect(record.value == "{\"a\":1}")
    }

    @Test func multiCharacterSeparatorsAndEmptyParts() throws {
        let record = try LineRecord(parsing: "k=>v=>w", keySeparator: "=>", lineNumber: 1)
        #expect(record.key == "k")
        #expect(record.value == "v=>w")
        let emptyKey = try LineRecord(parsing: "\tvalue", keySeparator: "\t", lineNumber: 1)
        #expect(emptyKey.key == "")
        #expect(emptyKey.value == "value")
        let emptyValue = try LineRecord(parsing: "key\t", keySeparator: "\t", lineNumber: 1)
        #expect(emptyValue.key == "key")
        #expect(emptyValue.value == "")
    }

    @Test func emptyLineWithoutSeparatorIsAnEmptyValue() throws {
        let record = try LineRecord(parsing: "", keySeparator: nil, lineNumber: 1)
        #expect(record.key == nil)
        #expect(record.value == "")
    }

    @Test func lineWithoutTheSeparatorIsAnErrorNamingTheLine() {
        #expect(throws: LineRecordError(lineNumber: 7, separator: ":")) {
            try LineRecord(parsing: "no key here", keySeparator: ":", lineNumber: 7)
        }
        let message = LineRecordError(lineNumber: 7, separator: ":").description
        #expect(message.contains("line 7"))
        #expect(message.contains("--key-separator"))
    }
}
