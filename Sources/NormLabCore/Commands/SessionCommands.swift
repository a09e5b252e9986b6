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

struct ShowHistory: Command, Equatable {
    static let help = CommandHelp(
        name: "history", usage: ["history"],
        summary: "list the commands run so far in this session", examples: ["history"])

    init() {}
    init(parsing cursor: inout ArgumentCursor) throws { try cursor.finish() }

    func run(in context: StatementContext) throws -> Report {
        Report(context.session.history.enumerated().map { i, line in
            .text(String(printf: "%4ld  ", i + 1) + Escaping.visible(line.replacing("\n", with: " ")))
        })
    }
}

struct ShowHelp: Command, Equatable {
    static let help = CommandHelp(
        name: "help", aliases: ["?"], usage: ["help", "help COMMAND", "help TOPIC"],
        summary: "list the commands, or explain one command or topic",
        details: "Topics: \(HelpTopics.names.joined(separator: ", ")).",
        examples: ["help", "help layer", "help conventions"],
        completion: CompletionRule { request in
            request.position == 1 ? request.matching(CommandTable.allNames + HelpTopics.names + LayerKind.allCases.map(\.rawValue)) : .nothing
        })

    let topic: String?

    init(topic: String?) { self.topic = topic }

    init(parsing cursor: inout ArgumentCursor) throws {
        topic = cursor.isAtEnd ? nil : try cursor.word("a command or topic").text
        try cursor.finish()
    }

    func run(in context: StatementContext) throws -> Report {
        Report([.text(try HelpText.text(for: topic))])
    }
}

struct Quit: Command, Equatable {
    static let help = CommandHelp(
        name: "quit", aliases: ["exit"], usage: ["quit", "exit"], summary: "leave NormLab", examples: ["quit"])

    init() {}
    init(parsing cursor: inout ArgumentCursor) throws { try cursor.finish() }

    func run(in context: StatementContext) throws -> Report {
        context.interpreter.requestQuit()
        return .empty
    }
}
