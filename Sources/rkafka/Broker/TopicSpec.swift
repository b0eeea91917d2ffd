/// A topic to create, written `NAME[:PARTITIONS]` on the command line (`orders:8`).
struct TopicSpec: Equatable, Sendable {
    let name: String
    let partitions: Int

    init(name: String, partitions: Int) {
        self.name = name
        self.partitions = partitions
    }

    /// Parses `NAME[:PARTITIONS]`; one partition when the count is left out.
    init(parsing text: String) throws(TopicSpecError) {
        let name: Substring
        var partitions = 1
        if let colon = text.lastIndex(of: ":") {
            name = text[..<colon]
            let count = text[text.index(after: colon)...]
            guard let parsed = Int(count), parsed >= 1 else {
                throw TopicSpecError(
                    "\"\(text)\": the partition count after ':' must be a whole number ≥ 1, got \"\(count)\"")
            }
            partitions = parsed
        } else {
            name = text[...]
        }
        guard !name.isEmpty else {
            throw TopicSpecError("\"\(text)\": the topic name is empty; write NAME[:PARTITIONS], e.g. orders:8")
        }
        guard name.count <= 249 else { throw TopicSpecError("\"\(text)\": a topic name has at most 249 characters") }
        let legal = name.allSatisfy {
            $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-")
        }
        guard legal, name != ".", name != ".." else {
            throw TopicSpecError("\"\(name)\" is not a legal topic name: use letters, digits, '.', '_' and '-' only")
        }
        self.init(name: String(name), partitions: partitions)
    }
}

/// A `--topic` value that is not `NAME[:PARTITIONS]`.
struct TopicSpecError: Error, CustomStringConvertible, Equatable {
    let description: String
    init(_ description: String) { self.description = description }
}
