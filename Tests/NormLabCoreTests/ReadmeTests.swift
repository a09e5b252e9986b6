import Foundation
import Testing
@testable import NormLabCore

/// README's examples are run like a session: the quick-start transcript must be what NormLab prints, and the
/// language table must name every command.
@Suite struct ReadmeTests {
    static func readme() throws -> String {
        try String(contentsOf: Repository.root.appendingPathComponent("README.md"), encoding: .utf8)
    }

    @Test func quickStartTranscriptIsTrue() throws {
        let text = try Self.readme()
        let marker = "```\n$ swift run -c release normlab\n"
        let start = try #require(text.range(of: marker))
        let end = try #require(text.range(of: "```\n", range: start.upperBound..<text.endIndex))
        let block = String(text[start.upperBound..<end.lowerBound])
        let commands = block.split(separator: "\n").filter { $0.hasPrefix("normlab> ") }.map { String($0.dropFirst(9)) }
        #expect(commands.count >= 3)
        let sink = BufferSink()
        let interpreter = Interpreter(sink: sink, workingDirectory: Repository.root.path)
        interpreter.echo = true
        #expect(interpreter.runScript(commands.joined(separator: "\n") + "\n", source: "README.md"))
        #expect(sink.transcript == block)
    }

    /// The "Using NormKit" snippet is the one UsageTests compiles and runs.
    @Test func normKitSnippetIsTheTestedOne() throws {
        let text = try Self.readme()
        let start = try #require(text.range(of: "```swift\nimport NormKit\n\n"))
        let end = try #require(text.range(of: "```\n", range: start.upperBound..<text.endIndex))
        let snippet = text[start.upperBound..<end.lowerBound].split(separator: "\n").map(String.init)
        let test = try String(contentsOf: Repository.root.appendingPathComponent("Tests/NormKitTests/UsageTests.swift"), encoding: .utf8)
        let lines = test.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        let from = try #require(lines.firstIndex(of: "// README snippet begins")), to = try #require(lines.firstIndex(of: "// README snippet ends"))
        #expect(Array(lines[(from + 1)..<to]) == snippet)
    }

    @Test func everyCommandIsDocumented() throws {
        let text = try Self.readme()
        for spec in CommandTable.commands.map({ $0.help }) {
            let forms = ["`\(spec.name) ", "`\(spec.name)`", ", \(spec.name)`", "`\(spec.name)\\|"]
            #expect(forms.contains { text.contains($0) }, "README's command table does not mention \(spec.name)")
        }
    }
}
