/// Where the read–eval loop gets its lines (the Lua `lua.c` model): readline on a terminal, plain lines from a
/// pipe or a file, the lines of a script's text. `Interpreter.run(_:source:)` is the one loop over all of them.
public protocol LineReader: AnyObject {
    /// The next line without its line end, or nil at the end of the input. `continuing`: a statement with an
    /// open `[` is waiting for more (a terminal shows a continuation prompt).
    func nextLine(continuing: Bool) -> InputLine?
}

public struct InputLine: Sendable {
    public let text: String
    /// Ctrl-C came before this line: forget any statement still open.
    public let abandonsStatement: Bool

    public init(_ text: String, abandonsStatement: Bool = false) {
        self.text = text
        self.abandonsStatement = abandonsStatement
    }
}

/// The lines of a text held in memory (a script file, `-c`): LF, CRLF or CR line ends, and a leading byte-order
/// mark is not part of the first command.
public final class TextLines: LineReader {
    private var lines: [Substring]
    private var index = 0

    public init(_ contents: String) {
        // "\r\n" is one Character in Swift: splitting on "\n" alone would not split at it.
        let text = contents.hasPrefix("\u{FEFF}") ? String(contents.dropFirst()) : contents
        lines = text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }
        if let last = text.last, last == "\n" || last == "\r\n" || last == "\r" { lines.removeLast() }
    }

    public func nextLine(continuing: Bool) -> InputLine? {
        guard index < lines.count else { return nil }
        defer { index += 1 }
        return InputLine(String(lines[index]))
    }
}

/// Gathers input lines into statements: while the lexer finds a `[` open, the statement is incomplete and
/// continues on the next line.
public struct StatementAccumulator {
    public struct Chunk: Equatable {
        public let text: String
        /// The line the statement began on.
        public let line: Int
    }

    private var pending: [String] = []
    private var firstLine = 0

    public init() {}

    /// True while a statement is waiting for its closing brackets (show a continuation prompt).
    public var isContinuing: Bool { !pending.isEmpty }

    /// Add one line; returns a complete statement when the line completes one.
    public mutating func add(_ line: String, lineNumber: Int) -> Chunk? {
        let clean = line.hasSuffix("\r") ? String(line.dropLast()) : line
        if pending.isEmpty { firstLine = lineNumber }
        pending.append(clean)
        let text = pending.joined(separator: "\n")
        // A statement past the length limit is handed over as it is, to be refused, rather than grown forever.
        guard Lexer.openBrackets(in: text) == 0 || text.count > Interpreter.maxStatementLength else { return nil }
        pending = []
        return Chunk(text: text, line: firstLine)
    }

    /// What is left at the end of the input, if a statement never closed.
    public var unfinished: Chunk? {
        pending.isEmpty ? nil : Chunk(text: pending.joined(separator: "\n"), line: firstLine)
    }

    /// Forget a half-typed statement (Ctrl-C at a continuation prompt).
    public mutating func reset() { pending = [] }
}
