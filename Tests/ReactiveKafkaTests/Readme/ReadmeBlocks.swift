import Foundation
import Testing

/// Checks that code the README shows is the code a test compiles: the lines of a test file
/// between `// <marker>: begin` and `// <marker>: end`, without their common indentation,
/// must appear verbatim in README.md.
enum ReadmeBlocks {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static func expectInReadme(
        _ testFile: String = #filePath, markers: [String], sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let source = try String(contentsOfFile: testFile, encoding: .utf8)
        for marker in markers {
            let shown = try #require(
                Self.block(marker, in: source), "no \(marker) block in \(testFile)", sourceLocation: sourceLocation)
            let shownVerbatim = readme.contains(shown)
            #expect(
                shownVerbatim,
                "README.md does not show the \(marker) block of \(URL(fileURLWithPath: testFile).lastPathComponent) verbatim",
                sourceLocation: sourceLocation)
        }
    }

    /// The lines between the markers, dedented.
    static func block(_ marker: String, in source: String) -> String? {
        let lines = source.split(separator: "\n", omittingEmptySubsequences: false)
        guard let begin = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces) == "// \(marker): begin" }),
            let end = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces) == "// \(marker): end" }),
            begin < end
        else { return nil }
        let body = lines[(begin + 1)..<end]
        let indent = body.filter { !$0.allSatisfy(\.isWhitespace) }.map { $0.prefix { $0 == " " }.count }.min() ?? 0
        return body.map { $0.allSatisfy(\.isWhitespace) ? "" : String($0.dropFirst(indent)) }.joined(separator: "\n")
    }
}
