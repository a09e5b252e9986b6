/// Tab completion from the command declarations: command names first, then whatever the command's
/// `CompletionRule` offers for the word being typed (sub-words, option keys and values, setting names, tensor
/// names); file paths are left to the line editor.
public enum Completion {
    public struct Result: Equatable, Sendable {
        /// Whole words that replace the word being typed (after the last space, `=` or `;`).
        public var candidates: [String]
        /// The word is a file path: let the line editor complete file names.
        public var wantsPaths: Bool

        public static let nothing = Result(candidates: [], wantsPaths: false)

        /// The same candidates, and file names too.
        func withPaths() -> Result { Result(candidates: candidates, wantsPaths: true) }
        public static let paths = Result(candidates: [], wantsPaths: true)
    }

    /// Candidates for the word that ends `line` (the text before the cursor).
    public static func complete(_ line: String, tensorNames: [String]) -> Result {
        let statement = line.split(separator: ";", omittingEmptySubsequences: false).last.map(String.init) ?? ""
        let endsWithSpace = statement.last.map { $0 == " " || $0 == "\t" } ?? true
        var words = statement.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        let current = endsWithSpace ? "" : (words.popLast() ?? "")
        guard let name = words.first else {
            return CompletionRequest(arguments: [], current: current, tensorNames: tensorNames).matching(CommandTable.allNames)
        }
        guard let command = CommandTable.lookup(name) else { return .nothing }
        let request = CompletionRequest(arguments: Array(words.dropFirst()), current: current, tensorNames: tensorNames)
        return command.help.completion.complete(request)
    }
}

/// The line being completed, as a command's rule sees it.
public struct CompletionRequest: Sendable {
    /// The words typed after the command's name, before the current one.
    public let arguments: [String]
    /// The word being typed (may be empty).
    public let current: String
    public let tensorNames: [String]

    /// 1 while the first argument is being typed.
    public var position: Int { arguments.count + 1 }

    /// The `key` and typed value prefix when the current word is `key=…`.
    public var option: (key: String, prefix: String)? {
        guard let equals = current.firstIndex(of: "=") else { return nil }
        return (String(current[..<equals]), String(current[current.index(after: equals)...]))
    }

    /// The words that start with what is typed, each once.
    public func matching(_ words: [String]) -> Completion.Result {
        var seen = Set<String>()
        return Completion.Result(candidates: words.filter { $0.hasPrefix(current) && seen.insert($0).inserted }, wantsPaths: false)
    }
}

/// How a command's arguments complete.
public struct CompletionRule: Sendable {
    let rule: @Sendable (CompletionRequest) -> Completion.Result

    public init(_ rule: @escaping @Sendable (CompletionRequest) -> Completion.Result) { self.rule = rule }

    func complete(_ request: CompletionRequest) -> Completion.Result {
        // An option's value completes only where the command says what the values are.
        rule(request)
    }

    public static let nothing = CompletionRule { _ in .nothing }

    /// These words and the session's tensor names, anywhere (not option values).
    public static func tensorsAnd(_ words: [String] = []) -> CompletionRule {
        CompletionRule { $0.option != nil ? .nothing : $0.matching(words + $0.tensorNames) }
    }

    /// These words, anywhere (not option values).
    public static func words(_ words: [String]) -> CompletionRule {
        CompletionRule { $0.option != nil ? .nothing : $0.matching(words) }
    }

    /// One kind of argument per position.
    public enum Slot: Sendable { case tensor, path, none, words([String]) }

    public static func positions(_ slots: [Slot]) -> CompletionRule {
        CompletionRule { request in
            guard request.option == nil, request.position <= slots.count else { return .nothing }
            switch slots[request.position - 1] {
            case .tensor: return request.matching(request.tensorNames)
            case .path: return .paths
            case .none: return .nothing
            case .words(let words): return request.matching(words)
            }
        }
    }
}
