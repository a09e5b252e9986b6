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

struct Record: Command, Equatable {
    static let help = CommandHelp(
        name: "record", usage: ["record FILE.html [answers=no]", "record FILE.md [answers=no]", "record stop", "record"],
        summary: "record the session from here as a handout: HTML (formulas, pictures) or Markdown",
        details: """
        Every command from here on, with its output, goes into the handout; comments in scripts become its text.
        In HTML (one self-contained file: styles inline, no script, no network; prints cleanly) `explain`'s steps are
        MathML formulas with the engine's numbers, and `hist` and `show axes` are pictures. In Markdown the steps are
        LaTeX math ($…$) and the pictures stay text in fenced blocks. The file is written, atomically, at
        `record stop` or when the session ends (if it cannot be written then, to the temporary folder instead, and
        NormLab says where). `record` alone says what is being recorded. One recording at a time. With answers=no
        an exercise's answers (`answer`, `exercise skip`) and their grading are left out: a worksheet.
        """,
        examples: ["record lesson.html", "record notes.md", "record worksheet.html answers=no", "record stop", "record"],
        completion: CompletionRule { request in
            if let (key, prefix) = request.option {
                return Completion.Result(candidates: key == "answers" ? ["yes", "no"].filter { $0.hasPrefix(prefix) } : [], wantsPaths: false)
            }
            return request.position == 1 ? request.matching(["stop"]).withPaths() : request.matching(["answers="])
        })

    enum Action: Equatable {
        case start(Located<String>, answers: Bool)
        case stop
        case status
    }

    let action: Action

    init(action: Action) { self.action = action }

    init(parsing cursor: inout ArgumentCursor) throws {
        if cursor.isAtEnd {
            action = .status
            return
        }
        var answers = true
        if let value = try cursor.takeOption("answers") {
            guard value.text == "yes" || value.text == "no" else {
                throw cursor.error("answers= takes yes or no, got \(cursor.describe(value))", at: value)
            }
            answers = value.text == "yes"
        }
        let word = try cursor.word("a file ending in .html or .md, or `stop`")
        try cursor.finish()
        action = word.text == "stop" ? .stop : .start(Located(word.text, word.range), answers: answers)
    }

    func run(in context: StatementContext) throws -> Report {
        let interpreter = context.interpreter
        switch action {
        case .status:
            guard let handout = interpreter.handout else {
                return Report([.text("not recording (`record FILE.html` or `record FILE.md` starts a handout)")])
            }
            return Report([.text("recording to \(Escaping.visible(handout.path)) (\(handout.format == .html ? "HTML" : "Markdown")): \(handout.commandCount) command\(handout.commandCount == 1 ? "" : "s") so far; `record stop` writes it")])
        case .stop:
            guard interpreter.handout != nil else {
                throw Diagnostic("nothing is being recorded (`record FILE.html` starts a handout)")
            }
            do {
                guard let handout = try interpreter.stopRecording() else { return .empty }
                return Report([.text("handout written to \(Escaping.visible(handout.path)) (\(handout.commandCount) command\(handout.commandCount == 1 ? "" : "s"))")])
            } catch {
                throw Diagnostic("cannot write the handout to \(error.message); still recording: free the path (or make its folder) and `record stop` again")
            }
        case .start(let path, let answers):
            if let current = interpreter.handout {
                throw context.error("already recording to \(Escaping.quoted(current.path)): `record stop` first (one handout at a time)", at: path.range)
            }
            guard let format = HandoutRecorder.Format(path: path.value) else {
                throw context.error("a handout is HTML or Markdown, chosen by the extension: give a path ending in .html or .md", at: path.range)
            }
            let url = interpreter.resolve(path.value)
            let directory = url.deletingLastPathComponent()
            guard FileSystem.isDirectory(directory.path) else {
                throw context.error("cannot record to \(Escaping.quoted(path.value)): the folder \(Escaping.quoted(directory.path)) does not exist", at: path.range)
            }
            if FileSystem.isDirectory(url.path) {
                throw context.error("cannot record to \(Escaping.quoted(path.value)): it is a directory", at: path.range)
            }
            try AtomicFile.checkReplaceable(url, path: path, text: context.text)
            // The file is written at the end: say now, not then, when its folder cannot be written.
            let writable = RawBytes.withPath(directory.path) { access($0, W_OK) } == 0
            guard writable else {
                throw context.error("cannot record to \(Escaping.quoted(path.value)): the folder \(Escaping.quoted(directory.path)) is not writable", at: path.range)
            }
            let handout = HandoutRecorder(path: path.value, url: url, format: format, includesAnswers: answers) { [unowned interpreter] in
                TerminalRenderer(style: Style(color: false), unicode: true, precision: interpreter.session.settings.precision,
                                 threshold: interpreter.session.settings.threshold)
            }
            interpreter.startRecording(handout)
            return Report([.text("recording to \(Escaping.visible(path.value)) (\(format == .html ? "HTML" : "Markdown")\(answers ? "" : ", without exercises' answers")); `record stop` writes it")])
        }
    }
}
