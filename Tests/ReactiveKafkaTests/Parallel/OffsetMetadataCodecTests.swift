import Testing

@testable import ReactiveKafka

@Suite struct OffsetMetadataCodecTests {
    @Test func roundTripsCompletedRanges() throws {
        let done: [Range<Int64>] = [102..<105, 107..<108, 2_000..<2_500]
        let text = try #require(OffsetMetadataCodec.encode(base: 100, done: done, maxBytes: 4096))
        #expect(text.hasPrefix("PC1:"))
        #expect(OffsetMetadataCodec.decode(text, committed: 100) == done)
    }

    @Test func nothingCompletedAboveEncodesNothing() {
        #expect(OffsetMetadataCodec.encode(base: 5, done: [], maxBytes: 4096) == nil)
    }

    @Test func picksTheBitsetForDenseAlternation() throws {
        // Every other offset done: one bit each beats two varints each.
        let done: [Range<Int64>] = (Int64(0)..<500).map { i -> Range<Int64> in (2 * i + 1)..<(2 * i + 2) }
        let text = try #require(OffsetMetadataCodec.encode(base: 0, done: done, maxBytes: 4096))
        #expect(text.hasPrefix("PC1:b:"))
        #expect(OffsetMetadataCodec.decode(text, committed: 0) == done)
    }

    @Test func picksRunLengthForLongRuns() throws {
        let done: [Range<Int64>] = [10..<100_000]
        let text = try #require(OffsetMetadataCodec.encode(base: 0, done: done, maxBytes: 4096))
        #expect(text.hasPrefix("PC1:r:"))
        #expect(OffsetMetadataCodec.decode(text, committed: 0) == done)
    }

    @Test func whatDoesNotFitIsLeftOutFromTheTopNeverInvented() throws {
        // 20,000 alternating offsets cannot fit 256 bytes: a prefix is encoded.
        let done: [Range<Int64>] = (Int64(0)..<20_000).map { i -> Range<Int64> in (2 * i + 1)..<(2 * i + 2) }
        let text = try #require(OffsetMetadataCodec.encode(base: 0, done: done, maxBytes: 256))
        #expect(text.utf8.count <= 256)
        let decoded = OffsetMetadataCodec.decode(text, committed: 0)
        #expect(!decoded.isEmpty)
        #expect(Array(done.prefix(decoded.count)) == decoded)
    }

    @Test func aLimitTooSmallForAnythingEncodesNothing() {
        #expect(OffsetMetadataCodec.encode(base: 1 << 40, done: [(1 << 40) + 1..<(1 << 40) + 2], maxBytes: 8) == nil)
    }

    @Test func metadataOfAnotherOffsetOrSourceIsIgnored() throws {
        let text = try #require(OffsetMetadataCodec.encode(base: 100, done: [101..<102], maxBytes: 4096))
        #expect(OffsetMetadataCodec.decode(text, committed: 99).isEmpty)
        #expect(OffsetMetadataCodec.decode("some application metadata", committed: 100).isEmpty)
        #expect(OffsetMetadataCodec.decode("PC1:r:!!!", committed: 100).isEmpty)
        #expect(OffsetMetadataCodec.decode("PC9:r:AA==", committed: 0).isEmpty)
        #expect(OffsetMetadataCodec.decode(nil, committed: 0).isEmpty)
    }

    @Test func randomSetsRoundTripWithinTheLimit() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<100 {
            let base = Int64.random(in: 0...1_000_000, using: &generator)
            var done: [Range<Int64>] = []
            var cursor = base
            for _ in 0..<Int.random(in: 1...400, using: &generator) {
                let gap = Int64.random(in: 1...20, using: &generator)
                let length = Int64.random(in: 1...20, using: &generator)
                done.append(cursor + gap..<cursor + gap + length)
                cursor += gap + length
            }
            let limit = Int.random(in: 16...4096, using: &generator)
            guard let text = OffsetMetadataCodec.encode(base: base, done: done, maxBytes: limit) else { continue }
            #expect(text.utf8.count <= limit)
            let decoded = Set(OffsetMetadataCodec.decode(text, committed: base).flatMap { Array($0) })
            // Never more than was done: a record not done is never skipped.
            #expect(decoded.isSubset(of: Set(done.flatMap { Array($0) })))
            #expect(!decoded.isEmpty)
        }
    }
}
