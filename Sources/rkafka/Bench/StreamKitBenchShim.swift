/// The bench command's way to StreamKit's own scenarios (`streamkit-…`), which live in
/// `StreamKitBench.swift`. Until that file exists this shim offers none; once it does, the
/// two members forward to `StreamKitBench`.
enum StreamKitBenchShim {
    /// Names of the StreamKit scenarios, all starting with `streamkit-`.
    static var scenarios: [String] { [] }

    /// Runs StreamKit scenario `scenario` over `elements` elements.
    static func run(_ scenario: String, elements: Int) async throws -> BenchLine {
        throw BenchError("StreamKit scenario \(scenario) is not available in this build")
    }
}

/// A benchmark that could not run, with the reason.
struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
