import Foundation
import NormKit

public enum OutputChannel: Sendable {
    case standard, error
}

/// Where the interpreter's text goes: stdout and stderr for the executable, a buffer for tests.
public protocol OutputSink: AnyObject {
    func write(_ text: String, to stream: OutputChannel)
}

/// Collects output; `transcript` interleaves both streams in the order they were written.
public final class BufferSink: OutputSink {
    public private(set) var standard = ""
    public private(set) var error = ""
    public private(set) var transcript = ""

    public init() {}

    public func write(_ text: String, to stream: OutputChannel) {
        switch stream {
        case .standard: standard += text
        case .error: error += text
        }
        transcript += text
    }
}

/// The REPL's core: text in, text out. It parses statements with the command table, runs them against a
/// `Session`, and writes results to standard output and diagnostics to standard error. A statement that fails
/// leaves the session exactly as it was.
public final class Interpreter {
    public static let maxRunDepth = 16
    /// The longest statement (in characters) NormLab reads; longer ones are refused, not parsed.
    public static let maxStatementLength = 65_536
    /// The history keeps the last this many statements.
    public static let maxHistory = 10_000

    public var session = Session()
    public let sink: OutputSink
    /// Print each statement after a prompt before running it: a script's output becomes a transcript.
    public var echo = false
    /// Colour is used only when allowed here (a terminal, no NO_COLOR) and switched on in the settings.
    public var colorAllowed = false
    /// Go on after an error in a script (the first error still makes the run fail).
    public var keepGoing = false
    /// Where relative paths in `load`, `save` and `run` start.
    public var workingDirectory: String
    /// Polled by long computations; true stops them (Ctrl-C).
    public var isCancelled: @Sendable () -> Bool = { false }
    public private(set) var quitRequested = false
    /// The `run` statements being executed, outermost first, for error traces.
    private var runStack: [Origin] = []

    public init(sink: OutputSink, workingDirectory: String = FileManager.default.currentDirectoryPath) {
        self.sink = sink
        self.workingDirectory = workingDirectory
    }

    var style: Style { Style(color: colorAllowed && session.settings.color) }

    // MARK: - Output

    func out(_ text: String) {
        sink.write(plain(text) + "\n", to: .standard)
    }

    /// With `set unicode off`, math symbols and block characters spelled in ASCII.
    func plain(_ text: String) -> String {
        session.settings.unicode ? text : ASCII.transliterate(text)
    }

    func warn(_ text: String, origin: Origin) {
        sink.write(prefix(origin) + style.warning("warning:") + " " + plain(text) + "\n", to: .error)
    }

    func note(_ text: String) {
        sink.write(style.note("note:") + " " + plain(text) + "\n", to: .error)
    }

    private func prefix(_ origin: Origin) -> String {
        origin.source == Origin.interactive.source ? "" : "\(origin.source):\(origin.line): "
    }

    func report(_ diagnostic: Diagnostic, origin: Origin) {
        var lines = diagnostic.message.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let first = lines.isEmpty ? "" : lines.removeFirst()
        var text = prefix(origin) + style.error("error:") + " " + first + "\n"
        for line in diagnostic.caretLines + lines { text += line + "\n" }
        for outer in runStack.reversed() {
            text += "  in `run` at \(outer.source):\(outer.line)\n"
        }
        sink.write(plain(text), to: .error)
    }

    // MARK: - Statements

    /// Run one chunk of input: one or more statements separated by `;`, possibly over several lines (an open
    /// `[` continues a statement). Returns false when a statement failed; later statements of the chunk are
    /// then skipped.
    @discardableResult
    public func execute(_ text: String, origin: Origin = .interactive) -> Bool {
        let length = text.count
        guard length <= Self.maxStatementLength else {
            report(Diagnostic("the statement is \(length) characters long; the limit is \(Self.maxStatementLength) (load big tensors from .npy files instead)"), origin: origin)
            return false
        }
        if echo { echoChunk(text) }
        let tokens: [Token]
        do {
            tokens = try Lexer.tokens(text)
        } catch {
            report(Diagnostic(error.message, at: error.range, in: text), origin: origin)
            return false
        }
        if tokens.isEmpty { return true }
        if runStack.isEmpty {
            session.history.append(text.trimmingCharacters(in: .whitespacesAndNewlines))
            if session.history.count > Self.maxHistory { session.history.removeFirst(session.history.count - Self.maxHistory) }
        }

        var statements: [[Token]] = [[]]
        for token in tokens {
            if token.kind == .semicolon { statements.append([]) } else { statements[statements.count - 1].append(token) }
        }
        var succeeded = true
        for statement in statements where !statement.isEmpty {
            if quitRequested { break }
            if !run(statement, text: text, origin: origin) {
                succeeded = false
                if !keepGoing { break }
            }
        }
        return succeeded
    }

    private func echoChunk(_ text: String) {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        for (i, line) in lines.enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if i == 0 && (trimmed.isEmpty || trimmed.hasPrefix("#")) && lines.count == 1 {
                out(String(line))  // blank lines and comments are narrative: shown as they are
            } else {
                out((i == 0 ? "normlab> " : "     ... ") + line)
            }
        }
    }

    private func run(_ tokens: [Token], text: String, origin: Origin) -> Bool {
        do {
            let command = try Self.parse(tokens, text: text)
            let saved = session
            do {
                try perform(command, text: text, origin: origin)
            } catch {
                session = saved
                throw error
            }
            return true
        } catch let diagnostic as Diagnostic {
            report(diagnostic, origin: origin)
        } catch is NestedRunFailure {
            // Already reported where it happened, with this run in its trace.
        } catch let error as NormError where error.code == .interrupted {
            // On a terminal the ^C echo ends the line the computation was printing on.
            let lead = origin == .interactive ? "\n" : ""
            sink.write(lead + style.warning("interrupted:") + " " + error.message + "; the session is as it was before\n", to: .error)
        } catch let error as NormError {
            report(Diagnostic(error.message), origin: origin)
        } catch {
            report(Diagnostic("\(error)"), origin: origin)
        }
        return false
    }

    /// Parse the tokens of one statement into a command.
    static func parse(_ tokens: [Token], text: String) throws -> Command {
        guard let head = tokens.first else { throw Diagnostic("empty statement") }
        guard head.kind == .word, let spec = CommandTable.lookup(head.text) else {
            var message = "unknown command \(Escaping.quoted(head.text))"
            if head.kind == .word, let guess = Suggest.closest(to: head.text, among: CommandTable.allNames) {
                message += "; did you mean '\(guess)'?"
            }
            throw Diagnostic(message + "\n(`help` lists the commands)", at: head.range, in: text)
        }
        var cursor = ArgumentCursor(tokens: Array(tokens.dropFirst()), text: text, spec: spec,
                                    endOffset: tokens.last!.range.upperBound)
        return try spec.parse(&cursor)
    }

    // MARK: - Scripts

    /// Run the text of a script: lines, with statements continued while a `[` is open. In echo mode blank lines
    /// and comments are echoed too. Returns false if any statement failed.
    @discardableResult
    public func runScript(_ contents: String, source: String) -> Bool {
        var succeeded = true
        var statements = StatementAccumulator()
        var lines = contents.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if contents.hasSuffix("\n") { lines.removeLast() }
        for (index, line) in lines.enumerated() {
            if quitRequested { break }
            guard let chunk = statements.add(line, lineNumber: index + 1) else { continue }
            if !execute(chunk.text, origin: Origin(source: source, line: chunk.line)) {
                succeeded = false
                if !keepGoing { return false }
            }
        }
        if !quitRequested, let unfinished = statements.unfinished {
            reportUnclosed(unfinished, source: source)
            return false
        }
        return succeeded
    }

    /// The end of the input came inside a statement with an open `[`.
    public func reportUnclosed(_ chunk: StatementAccumulator.Chunk, source: String) {
        if echo { echoChunk(chunk.text) }
        let open = Lexer.unclosedBrackets(in: chunk.text).first ?? 0
        report(Diagnostic("this '[' is never closed before the end of the input", at: open..<(open + 1), in: chunk.text),
               origin: Origin(source: source, line: chunk.line))
    }

    struct NestedRunFailure: Error {}

    func runFile(_ path: Located<String>, text: String, origin: Origin) throws {
        guard runStack.count < Self.maxRunDepth else {
            throw Diagnostic("`run` is nested more than \(Self.maxRunDepth) deep (does a script run itself?)", at: path.range, in: text)
        }
        let url = resolve(path.value)
        let contents = try readText(url, path: path, text: text)
        runStack.append(origin)
        defer { runStack.removeLast() }
        let savedEcho = echo
        defer { echo = savedEcho }
        if !runScript(contents, source: path.value) { throw NestedRunFailure() }
    }

    func resolve(_ path: String) -> URL {
        let expanded = (path as NSString).expandingTildeInPath
        if expanded.hasPrefix("/") { return URL(fileURLWithPath: expanded) }
        return URL(fileURLWithPath: workingDirectory).appendingPathComponent(expanded)
    }

    /// The bytes of a regular file, or an error naming what is wrong with the path (`what`: "a .npy file").
    func readFile(_ url: URL, path: Located<String>, text: String, what: String) throws -> Data {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw Diagnostic("no such file: \(Escaping.quoted(path.value))", at: path.range, in: text)
        }
        guard !isDirectory.boolValue else {
            throw Diagnostic("\(Escaping.quoted(path.value)) is a directory, not \(what)", at: path.range, in: text)
        }
        try AtomicFile.checkRegular(url, path: path, text: text)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw Diagnostic("cannot read \(Escaping.quoted(path.value)) (permission denied?)", at: path.range, in: text)
        }
        return data
    }

    func readText(_ url: URL, path: Located<String>, text: String) throws -> String {
        let data = try readFile(url, path: path, text: text, what: "a file")
        guard let contents = String(data: data, encoding: .utf8) else {
            throw Diagnostic("\(Escaping.quoted(path.value)) is not UTF-8 text", at: path.range, in: text)
        }
        return contents
    }

    func requestQuit() { quitRequested = true }
}

/// "Did you mean …?" by edit distance.
enum Suggest {
    static func closest(to word: String, among candidates: [String]) -> String? {
        let scored = candidates.map { ($0, distance(word.lowercased(), $0)) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= max(1, word.count / 3) else { return nil }
        return best.0
    }

    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a.prefix(64)), b = Array(b)
        var previous = Array(0...b.count)
        for (i, ca) in a.enumerated() {
            var current = [i + 1]
            for (j, cb) in b.enumerated() {
                current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (ca == cb ? 0 : 1)))
            }
            previous = current
        }
        return previous[b.count]
    }
}

/// Gathers input lines into statements: a line with an open `[` continues on the next.
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
