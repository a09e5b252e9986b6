#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NormKit

public enum OutputChannel: Sendable {
    case standard, error
}

/// Where rendered text goes: stdout and stderr for the executable, a buffer for tests.
public protocol OutputSink: AnyObject {
    func write(_ text: String, to channel: OutputChannel)
}

/// Receives every block before it is rendered (a handout being recorded, a test).
public protocol BlockRecorder: AnyObject {
    func record(_ block: Block)
}

/// Collects output; `transcript` interleaves both channels in the order they were written.
public final class BufferSink: OutputSink {
    public private(set) var standard = ""
    public private(set) var error = ""
    public private(set) var transcript = ""

    public init() {}

    public func write(_ text: String, to channel: OutputChannel) {
        switch channel {
        case .standard: standard += text
        case .error: error += text
        }
        transcript += text
    }
}

/// The REPL's core: text in, values out. It parses statements with the command table, runs them against a
/// `Session`, and sends what they return, as blocks, through `emit`: the one path every piece of output takes
/// (rendered for the terminal into `sink`, and handed to the `recorders`). A statement that fails leaves the
/// session exactly as it was.
public final class Interpreter {
    public static let maxRunDepth = 16
    /// The longest statement (in characters) NormLab reads; longer ones are refused, not parsed.
    public static let maxStatementLength = 65_536
    /// The history keeps the last this many statements.
    public static let maxHistory = 10_000

    public var session = Session()
    public let sink: OutputSink
    public var recorders: [any BlockRecorder] = []
    /// The handout being recorded (`record FILE`), also one of the `recorders`.
    public internal(set) var handout: HandoutRecorder?
    /// Print each statement after a prompt before running it: a script's output becomes a transcript.
    public var echo = false
    /// Colour is used only when allowed here (a terminal, no NO_COLOR) and switched on in the settings, decided
    /// for each stream: standard output to a terminal and errors to a log file get it on one and not the other.
    public var colorAllowed = false
    public var errorColorAllowed = false
    /// Go on after an error in a script (the first error still makes the run fail).
    public var keepGoing = false
    /// Where relative paths in `load`, `save` and `run` start.
    public var workingDirectory: String
    /// Polled by long computations; true stops them (Ctrl-C).
    public var isCancelled: @Sendable () -> Bool = { false }
    /// Checked before each statement; true ends the read–eval loop (SIGTERM, SIGHUP).
    public var shouldStop: @Sendable () -> Bool = { false }
    public private(set) var quitRequested = false
    /// The `run` statements being executed, outermost first, for error traces.
    private var runStack: [Origin] = []

    /// `workingDirectory`: where relative paths start; nil for the process's current directory.
    public init(sink: OutputSink, workingDirectory: String? = nil) {
        self.sink = sink
        self.workingDirectory = workingDirectory ?? FileSystem.currentDirectory
    }

    var style: Style { Style(color: colorAllowed && session.settings.color) }

    /// The renderer for standard output.
    public var renderer: TerminalRenderer { renderer(for: .standard) }

    public func renderer(for channel: OutputChannel) -> TerminalRenderer {
        let allowed = channel == .standard ? colorAllowed : errorColorAllowed
        return TerminalRenderer(style: Style(color: allowed && session.settings.color), unicode: session.settings.unicode,
                                precision: session.settings.precision, threshold: session.settings.threshold)
    }

    // MARK: - Output

    public func emit(_ block: Block) {
        for recorder in recorders {
            // The handout gets statements and comments one by one from `execute`, echoed or not.
            if recorder === handout, case .echo = block { continue }
            if recorder === handout, case .narrative = block { continue }
            recorder.record(block)
        }
        sink.write(renderer(for: block.channel).render(block), to: block.channel)
    }

    func report(_ diagnostic: Diagnostic, origin: Origin) {
        emit(.error(diagnostic, origin: origin, trace: runStack))
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
        // A handout records a script's comments and blank lines, and each statement (below) as it runs.
        if tokens.isEmpty, let handout {
            let trimmed = text.trimmed()
            if trimmed.isEmpty || trimmed.hasPrefix("#") { handout.record(.narrative(text)) }
        }
        if tokens.isEmpty { return true }
        if runStack.isEmpty {
            session.history.append(text.trimmed(newlines: true))
            if session.history.count > Self.maxHistory { session.history.removeFirst(session.history.count - Self.maxHistory) }
        }

        var statements: [[Token]] = [[]]
        for token in tokens {
            if token.kind == .semicolon { statements.append([]) } else { statements[statements.count - 1].append(token) }
        }
        var succeeded = true
        var characters: [Character] = []  // made when a handout first needs a statement's text
        for statement in statements where !statement.isEmpty {
            if quitRequested || shouldStop() { break }
            if let handout, let first = statement.first, let last = statement.last {
                if characters.isEmpty { characters = Array(text) }
                handout.record(.echo(String(characters[first.range.lowerBound..<last.range.upperBound])))
            }
            if !run(statement, text: text, origin: origin) {
                succeeded = false
                if !keepGoing { break }
            }
        }
        return succeeded
    }

    private func echoChunk(_ text: String) {
        let trimmed = text.trimmed()
        if !text.contains("\n") && (trimmed.isEmpty || trimmed.hasPrefix("#")) {
            emit(.narrative(text))  // blank lines and comments are narrative: shown as they are
        } else {
            emit(.echo(text))
        }
    }

    private func run(_ tokens: [Token], text: String, origin: Origin) -> Bool {
        do {
            let command = try CommandTable.parse(tokens, text: text)
            let saved = session
            let result: Report
            do {
                result = try command.run(in: StatementContext(interpreter: self, text: text, origin: origin))
            } catch {
                session = saved
                throw error
            }
            for block in result.blocks { emit(block) }
            return true
        } catch let diagnostic as Diagnostic {
            report(diagnostic, origin: origin)
        } catch is NestedRunFailure {
            // Already reported where it happened, with this run in its trace.
        } catch let error as NormError where error.code == .interrupted {
            emit(.interrupted(error.message, newlineFirst: origin == .interactive))
        } catch let error as NormError {
            report(Diagnostic(error.message), origin: origin)
        } catch {
            report(Diagnostic("\(error)"), origin: origin)
        }
        return false
    }

    // MARK: - The read–eval loop

    /// Read statements from `reader` and run them until the input ends or `quit`. `source` names a script
    /// (errors are prefixed with its name and line, and the first one stops the run unless `keepGoing`); nil is
    /// an interactive session, which never stops on an error. Returns false if any statement failed.
    @discardableResult
    public func run(_ reader: any LineReader, source: String?) -> Bool {
        var succeeded = true
        var statements = StatementAccumulator()
        var lineNumber = 0
        while !quitRequested && !shouldStop() {
            guard let input = reader.nextLine(continuing: statements.isContinuing) else { break }
            if input.abandonsStatement { statements.reset() }
            lineNumber += 1
            guard let chunk = statements.add(input.text, lineNumber: lineNumber) else { continue }
            let origin = source.map { Origin(source: $0, line: chunk.line) } ?? .interactive
            if !execute(chunk.text, origin: origin) {
                succeeded = false
                if source != nil && !keepGoing { return false }
            }
        }
        if !quitRequested, !shouldStop(), let unfinished = statements.unfinished {
            guard let source else {
                // The end of input (Ctrl-D) on a continuation line: say what is not run.
                emit(.note("the unfinished statement (a '[' is still open) was not run"))
                return succeeded
            }
            reportUnclosed(unfinished, source: source)
            return false
        }
        return succeeded
    }

    /// Run the text of a script: lines, with statements continued while a `[` is open. In echo mode blank lines
    /// and comments are echoed too. Returns false if any statement failed.
    @discardableResult
    public func runScript(_ contents: String, source: String) -> Bool {
        run(TextLines(contents), source: source)
    }

    /// The end of the input came inside a statement with an open `[`.
    func reportUnclosed(_ chunk: StatementAccumulator.Chunk, source: String) {
        if echo { echoChunk(chunk.text) }
        let open = Lexer.unclosedBrackets(in: chunk.text).first ?? 0
        report(Diagnostic("this '[' is never closed before the end of the input", at: open..<(open + 1), in: chunk.text),
               origin: Origin(source: source, line: chunk.line))
    }

    struct NestedRunFailure: Error {}

    /// `run FILE`: the file's statements, with this statement in their error traces.
    func runFile(_ path: Located<String>, text: String, origin: Origin) throws {
        guard runStack.count < Self.maxRunDepth else {
            throw Diagnostic("`run` is nested more than \(Self.maxRunDepth) deep (does a script run itself?)", at: path.range, in: text)
        }
        let contents = try readText(resolve(path.value), path: path, text: text)
        runStack.append(origin)
        defer { runStack.removeLast() }
        let savedEcho = echo
        defer { echo = savedEcho }
        if !runScript(contents, source: path.value) { throw NestedRunFailure() }
    }

    func requestQuit() { quitRequested = true }
}

/// One statement being run: the interpreter, and the statement's text and origin, for errors that point into it.
public struct StatementContext {
    public let interpreter: Interpreter
    public let text: String
    public let origin: Origin
}
