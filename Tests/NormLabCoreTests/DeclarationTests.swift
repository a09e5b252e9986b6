import Foundation
import Testing
@testable import NormLabCore

/// One declaration per command, one row per setting: these tests fail when a command or a setting is added
/// without what goes with it.
@Suite struct DeclarationTests {
    /// Commands whose output changes from run to run, or that write files beside the script, cannot be part of a
    /// golden transcript; their own tests cover them.
    static let notInSessions: [String: String] = [
        "time": "timings differ on every run (InterpreterTests)",
        "export": "writes files beside its script (ExportTests)",
        "record": "writes a handout file (HandoutTests, HandoutBrowserTests)",
    ]

    static func sessionText() throws -> String {
        let names = try FileManager.default.contentsOfDirectory(atPath: Repository.sessions.path).filter { $0.hasSuffix(".nl") }
        return try names.map { try String(contentsOf: Repository.sessions.appendingPathComponent($0), encoding: .utf8) }.joined(separator: "\n")
    }

    @Test func everyCommandHasHelpAnExampleAReadmeRowAndASession() throws {
        let readme = try ReadmeTests.readme()
        let sessions = try Self.sessionText()
        let statements = sessions.split(separator: "\n").flatMap { $0.split(separator: ";") }
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.hasPrefix("#") }
        for help in CommandTable.commands.map({ $0.help }) {
            #expect(!help.summary.isEmpty && !help.usage.isEmpty && !help.examples.isEmpty, "\(help.name) lacks help")
            for usage in help.usage { #expect(help.names.contains { usage.hasPrefix($0) }, "\(help.name): usage '\(usage)'") }
            let forms = ["`\(help.name) ", "`\(help.name)`", ", \(help.name)`", "`\(help.name)\\|"]
            #expect(forms.contains { readme.contains($0) }, "README's command table does not mention \(help.name)")
            if Self.notInSessions[help.name] == nil {
                let used = statements.contains { statement in help.names.contains { statement == $0 || statement.hasPrefix($0 + " ") } }
                #expect(used, "no session in sessions/ uses \(help.name)")
            }
        }
    }

    /// Every type in Commands/ that conforms to Command is listed in CommandTable.commands (Swift cannot list a
    /// protocol's conformances at run time, so the sources are read).
    @Test func everyDeclaredCommandIsListed() throws {
        let folder = Repository.root.appendingPathComponent("Sources/NormLabCore/Commands")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".swift") }
        var declared: [String] = []
        let pattern = try NSRegularExpression(pattern: #"^struct (\w+): Command\b"#, options: .anchorsMatchLines)
        for file in files {
            let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
            for match in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                declared.append((text as NSString).substring(with: match.range(at: 1)))
            }
        }
        let listed = CommandTable.commands.map { String(describing: $0) }
        #expect(declared.count >= 20)
        #expect(Set(declared) == Set(listed), "declared but not listed: \(Set(declared).subtracting(listed)); listed but not found: \(Set(listed).subtracting(declared))")
        #expect(listed.count == Set(listed).count)
    }

    /// Each stored property of Settings has exactly one row in Settings.table, and README's settings table
    /// names every row.
    @Test func everySettingHasOneRow() throws {
        let defaults = Settings()
        let properties = Set(Mirror(reflecting: defaults).children.compactMap(\.label))
        var covered: [String] = []
        for row in Settings.table {
            // Set the row to a value other than its default: exactly one property must change.
            let candidates = row.completions.isEmpty ? ["1", "2", "3"] : row.completions
            var changed: [String] = []
            for text in candidates {
                var settings = defaults
                guard row.assign(text, to: &settings), settings != defaults else { continue }
                let before = Mirror(reflecting: defaults).children, after = Mirror(reflecting: settings).children
                changed = zip(before, after).filter { "\($0.value)" != "\($1.value)" }.compactMap { $0.0.label }
                #expect(row.value(in: settings) == text, "\(row.name): set \(text), reads \(row.value(in: settings))")
                break
            }
            #expect(changed.count == 1, "\(row.name) changes \(changed)")
            covered += changed
            var untouched = defaults
            #expect(!row.assign("not-a-value", to: &untouched) && untouched == defaults, "\(row.name) took a bad value")
        }
        #expect(Set(covered) == properties, "properties without a row: \(properties.subtracting(covered))")
        #expect(covered.count == Set(covered).count)
        let readme = try ReadmeTests.readme()
        for row in Settings.table { #expect(readme.contains("| `\(row.name)` |"), "README's settings table lacks \(row.name)") }
    }

    /// `help set` and tab completion read the same table.
    @Test func setHelpAndCompletionComeFromTheTable() throws {
        let (i, sink) = makeInterpreter()
        let (help, _) = run(i, sink, "help set")
        for row in Settings.table { #expect(help.contains("  \(row.name) \(row.valueWords)")) }
        #expect(Completion.complete("set ", tensorNames: []).candidates == Settings.names)
        #expect(Completion.complete("set dtype f", tensorNames: []).candidates == ["float32", "float64", "float16"])
        #expect(Completion.complete("set dtype b", tensorNames: []).candidates == ["bfloat16"])
        #expect(Completion.complete("set unicode o", tensorNames: []).candidates == ["on", "off"])
    }
}

/// Output is a sequence of blocks; what a recorder receives renders to exactly what the terminal got.
@Suite struct RecordingTests {
    final class Recorder: BlockRecorder {
        var blocks: [Block] = []
        func record(_ block: Block) { blocks.append(block) }
    }

    @Test func recordedBlocksRenderToTheTranscript() throws {
        let url = Repository.sessions.appendingPathComponent("01-first-groupnorm-by-hand.nl")
        let (interpreter, sink) = makeInterpreter()
        let recorder = Recorder()
        interpreter.recorders = [recorder]
        interpreter.echo = true
        #expect(interpreter.runScript(try String(contentsOf: url, encoding: .utf8), source: "s"))
        let rendered = recorder.blocks.map { interpreter.renderer.render($0) }.joined()
        #expect(rendered == sink.transcript)
        #expect(recorder.blocks.contains { if case .derivation = $0 { true } else { false } })
        #expect(recorder.blocks.contains { if case .echo("forward") = $0 { true } else { false } })
    }
}

/// The pass keeps the dy its backward used: naming another tensor dy afterwards changes none of what reads it.
@Suite struct PassKeepsItsDyTests {
    @Test func explainExportGradcheckAndHintsUseThePassesDy() throws {
        let (i, sink) = makeInterpreter()
        run(i, sink, "tensor x = randn 2 4 3 seed 0", "layer groupnorm 2", "forward", "backward")
        let (before, _) = run(i, sink, "explain backward")
        let (checkBefore, _) = run(i, sink, "gradcheck dx")
        let (_, err) = run(i, sink, "tensor dy = ones 2 4 3")
        #expect(err.isEmpty)
        let (after, _) = run(i, sink, "explain backward")
        let (checkAfter, _) = run(i, sink, "gradcheck dx")
        #expect(before == after)
        #expect(checkBefore == checkAfter)

        let directory = try makeTemporaryDirectory("normlab-dy")
        defer { try? FileManager.default.removeItem(at: directory) }
        i.workingDirectory = directory.path
        let (_, exportErr) = run(i, sink, "export numpy check.py")
        #expect(exportErr.isEmpty)
        run(i, sink, "load exported check_dy.npy", "tensor own = randn 2 4 3 seed 1000")
        let (compared, _) = run(i, sink, "compare exported own")
        #expect(compared.contains("bitwise equal: yes"))

        // A forward after the backward starts a new pass: it has no dy until its own backward.
        run(i, sink, "forward")
        let (_, noBackward) = run(i, sink, "explain backward")
        #expect(noBackward.contains("needs a backward pass after the last forward"))
    }
}

/// The manual page is made from the declarations: every command and setting is in it.
@Suite struct ManPageTests {
    @Test func everyCommandAndSettingIsInTheManualPage() {
        let page = ManPage.render(usage: "USAGE: normlab [<files> ...]")
        #expect(page.hasPrefix(".TH NORMLAB 1"))
        for help in CommandTable.commands.map({ $0.help }) { #expect(page.contains("\\fB" + ManPage.escape(help.usage[0])), "\(help.name)") }
        for setting in Settings.table { #expect(page.contains("\\fBset \(setting.name)\\fR"), "\(setting.name)") }
        #expect(!page.contains("\n.\n") && !page.contains("\u{E000}"))
    }
}
