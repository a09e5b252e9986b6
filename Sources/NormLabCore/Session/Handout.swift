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

/// A session being recorded as a handout (`record FILE.html` / `record FILE.md`): every block from the moment
/// recording starts, with the statement that made it. Held in memory and written atomically when recording
/// stops or the session ends, so a half-written handout never exists.
public final class HandoutRecorder: BlockRecorder {
    public enum Format: String, Sendable {
        case html, markdown

        /// By the path's extension: .html/.htm or .md/.markdown.
        public init?(path: String) {
            switch PathText.fileExtension(path).lowercased() {
            case "html", "htm": self = .html
            case "md", "markdown": self = .markdown
            default: return nil
            }
        }
    }

    /// The path as the user typed it (for messages) and where it resolves.
    public let path: String
    public let url: URL
    public let format: Format
    public private(set) var entries: [HandoutEntry] = []
    public private(set) var commandCount = 0
    /// The renderer for the numbers of each block, with the session's settings when it is recorded.
    let renderer: () -> TerminalRenderer
    let started: String
    /// Inside the output of a `record` statement itself, which is not part of the handout (it starts there).
    private var skipping = true
    /// `answers=no`: exercises' answers (`answer`, `exercise skip`) and what they show are left out: a worksheet.
    let includesAnswers: Bool

    init(path: String, url: URL, format: Format, includesAnswers: Bool = true, renderer: @escaping () -> TerminalRenderer) {
        self.includesAnswers = includesAnswers
        self.path = path
        self.url = url
        self.format = format
        self.renderer = renderer
        self.started = Self.timestamp()
    }

    public func record(_ block: Block) {
        switch block {
        case .echo(let statement):
            let words = statement.trimmed().split(separator: " ")
            skipping = words.first == "record"
                || (!includesAnswers && (words.first == "answer" || (words.first == "exercise" && words.dropFirst().first == "skip")))
            if skipping { return }
            commandCount += 1
        case .narrative:
            skipping = false
        default:
            if skipping { return }
        }
        entries.append(HandoutEntry(block: block, renderer: renderer()))
    }

    /// The handout's text.
    public func document() -> String {
        let title = PathText.lastComponent(path)
        let subtitle = "A NormLab \(NormLabVersion.current) session, recorded \(started): \(commandCount) command\(commandCount == 1 ? "" : "s")"
        switch format {
        case .html: return HandoutHTML(title: title, subtitle: subtitle).document(entries)
        case .markdown: return HandoutMarkdown(title: title, subtitle: subtitle).document(entries)
        }
    }

    /// Write the handout to its file (a temporary beside it, then renamed).
    func write() throws(AtomicFile.FileFailure) {
        try AtomicFile.write(Data(document().utf8), to: url)
    }

    /// "2026-11-30 18:02 UTC"
    static func timestamp() -> String {
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        return String(printf: "%04d-%02d-%02d %02d:%02d UTC", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                      Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min))
    }
}

extension Interpreter {
    /// Start recording into `handout`; there is one at a time.
    func startRecording(_ handout: HandoutRecorder) {
        self.handout = handout
        recorders.append(handout)
    }

    /// Stop recording and write the file. When the write fails the recording goes on (nothing is lost) and the
    /// error says so.
    func stopRecording() throws(AtomicFile.FileFailure) -> HandoutRecorder? {
        guard let handout else { return nil }
        try handout.write()
        detach(handout)
        return handout
    }

    private func detach(_ handout: HandoutRecorder) {
        recorders.removeAll { $0 === handout }
        self.handout = nil
    }

    /// At the end of a session (input ended, `quit`, SIGTERM): write the handout being recorded. If its file
    /// cannot be written, the handout goes to a file in the temporary folder instead, and the message says where.
    public func finishRecording() {
        guard let handout else { return }
        detach(handout)
        do {
            try handout.write()
            emit(.note("handout written to \(Escaping.visible(handout.path)) (\(handout.commandCount) commands)"))
        } catch {
            let folder = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
            let fallback = PathText.appending("normlab-handout-\(getpid()).\(handout.format == .html ? "html" : "md")", to: folder)
            do {
                try AtomicFile.write(Data(handout.document().utf8), to: URL(fileURLWithPath: fallback))
                emit(.warning("cannot write the handout to \(error.message); it was written to \(Escaping.visible(fallback)) instead", origin: .interactive))
            } catch let second {
                emit(.error(Diagnostic("cannot write the handout to \(error.message), nor to \(second.message): it is lost"), origin: .interactive, trace: []))
            }
        }
    }
}
