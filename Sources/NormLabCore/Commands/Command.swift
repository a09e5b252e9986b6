import NormKit

/// What a command says about itself: the words `help`, the usage line of a parse error, README and tab
/// completion all read, so they cannot drift apart.
public struct CommandHelp: Sendable {
    public let name: String
    public let aliases: [String]
    public let usage: [String]
    public let summary: String
    public let details: String
    public let examples: [String]
    /// What may follow the command's name, for tab completion.
    public let completion: CompletionRule

    public init(name: String, aliases: [String] = [], usage: [String], summary: String, details: String = "",
                examples: [String], completion: CompletionRule = .nothing) {
        self.name = name
        self.aliases = aliases
        self.usage = usage
        self.summary = summary
        self.details = details
        self.examples = examples
        self.completion = completion
    }

    public var names: [String] { [name] + aliases }
}

/// One command of the language, declared in one place (the swift-argument-parser model): its help, its grammar
/// (`init(parsing:)`, which reads the tokens after the name) and its handler (`run`, which changes the session
/// and returns what to show, never text: renderers word it for the terminal or a handout).
///
/// Adding a command: one type conforming to this protocol in `Commands/`, listed in `CommandTable.commands`,
/// and a row in README's command table. `CommandDeclarationTests` fails when one of them is missing.
public protocol Command: Sendable {
    static var help: CommandHelp { get }
    init(parsing arguments: inout ArgumentCursor) throws
    func run(in context: StatementContext) throws -> Report
}

/// Every command, in the order `help` lists them.
public enum CommandTable {
    public static let commands: [any Command.Type] = [
        MakeTensor.self, Reshape.self, ListTensors.self, DeleteTensors.self,
        ChooseLayer.self, SetParameter.self, TrainMode.self, EvalMode.self, ZeroGrad.self,
        Forward.self, Backward.self,
        Show.self, Stats.self, SetSetting.self,
        Load.self, Save.self, RunFile.self,
        Gradcheck.self, Diagnose.self, Check.self, Explain.self, ExerciseCommand.self, Answer.self, Histogram.self, Compare.self,
        Export.self, Time.self, Record.self,
        ShowHistory.self, ShowHelp.self, Quit.self,
    ]

    public static func lookup(_ name: String) -> (any Command.Type)? {
        commands.first { $0.help.names.contains(name) }
    }

    public static var allNames: [String] { commands.flatMap { $0.help.names } }

    /// Parse the tokens of one statement into a command.
    public static func parse(_ tokens: [Token], text: String) throws -> any Command {
        guard let head = tokens.first else { throw Diagnostic("empty statement") }
        guard head.kind == .word, let type = lookup(head.text) else {
            var message = "unknown command \(Escaping.quoted(head.text))"
            if head.kind == .word, let guess = Suggest.closest(to: head.text, among: allNames) {
                message += "; did you mean '\(guess)'?"
            }
            throw Diagnostic(message + "\n(`help` lists the commands)", at: head.range, in: text)
        }
        var cursor = ArgumentCursor(tokens: Array(tokens.dropFirst()), text: text, help: type.help,
                                    endOffset: tokens.last!.range.upperBound)
        return try type.init(parsing: &cursor)
    }
}

/// A value with the place in the statement it came from, so that errors found while running can point at it.
public struct Located<Value: Equatable & Sendable>: Equatable, Sendable {
    public let value: Value
    public let range: Range<Int>

    public init(_ value: Value, _ range: Range<Int>) {
        self.value = value
        self.range = range
    }
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
