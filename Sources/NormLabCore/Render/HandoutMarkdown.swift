/// A recorded session as Markdown: comments as paragraphs, each command with its output in a fenced block,
/// `explain`'s steps as a numbered list with LaTeX math (`$…$`, as GitHub, Pandoc and Jupyter read it), and the
/// text pictures of `hist` and `show axes` in fenced blocks.
public struct HandoutMarkdown {
    public let title: String
    public let subtitle: String

    public init(title: String, subtitle: String) {
        self.title = title
        self.subtitle = subtitle
    }

    public func document(_ entries: [HandoutEntry]) -> String {
        var out = "# \(Self.escapeText(title))\n\n_\(Self.escapeText(subtitle))_\n\n"
        var fence: [String] = []  // the open fenced block's lines
        var paragraph: [String] = []
        func closeFence() {
            guard !fence.isEmpty else { return }
            let body = fence.joined(separator: "\n")
            let marker = Self.fenceMarker(for: body)
            out += marker + "text\n" + body + "\n" + marker + "\n\n"
            fence = []
        }
        func closeParagraph() {
            guard !paragraph.isEmpty else { return }
            out += paragraph.map(Self.escapeText).joined(separator: "\n") + "\n\n"
            paragraph = []
        }
        for entry in entries {
            switch entry.block {
            case .narrative(let line):
                closeFence()
                let text = HandoutHTML.comment(line)
                if text.isEmpty { closeParagraph() } else { paragraph.append(text) }
            case .echo:
                closeParagraph()
                closeFence()
                fence.append(contentsOf: Self.lines(entry.renderer.render(entry.block)))
            case .derivation(let derivation):
                closeParagraph()
                closeFence()
                out += derivationMarkdown(derivation) + "\n"
            default:
                closeParagraph()
                fence.append(contentsOf: Self.lines(entry.renderer.render(entry.block)))
            }
        }
        closeParagraph()
        closeFence()
        return out
    }

    func derivationMarkdown(_ derivation: Derivation) -> String {
        var out = "**\(Self.escapeText(derivation.title))**\n\n"
        var step = 0
        var inList = false
        for line in derivation.lines {
            if case .text = line {} else { inList = true }
            switch line {
            case .text(let text):
                // A blank line ends the numbered list; without it the text would join the last item.
                if inList { out += "\n"; inList = false }
                out += Self.mixed(text) + "\n\n"
            case .step(let formula, let value):
                step += 1
                let item = "\(step). " + Self.markdown(MathNotation.pieces(formula: formula, value: value))
                out += item + "\n"
            case .heading(let text):
                step += 1
                out += "\(step). " + Self.mixed(text) + "\n"
            case .detail(let text):
                out += "   - " + Self.mixed(text) + "\n"
            }
        }
        return out
    }

    /// A line whose leading equation is LaTeX math, the rest prose.
    static func mixed(_ text: String) -> String { markdown(MathNotation.pieces(line: text)) }

    static func markdown(_ pieces: [MathNotation.Piece]) -> String {
        pieces.map { piece in
            switch piece {
            case .math(let formula): inlineMath(formula)
            case .prose(let text): escapeText(text)
            }
        }.joined(separator: " ")
    }

    static func inlineMath(_ formula: String) -> String { "$" + MathNotation.latex(formula) + "$" }

    static func lines(_ rendered: String) -> [String] {
        var lines = rendered.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        return lines
    }

    /// A fence longer than any run of backticks in the body, so the body cannot close it.
    static func fenceMarker(for body: String) -> String {
        var longest = 0, run = 0
        for c in body {
            if c == "`" { run += 1; longest = max(longest, run) } else { run = 0 }
        }
        return String(repeating: "`", count: max(3, longest + 1))
    }

    /// Prose with Markdown's active characters escaped, so a comment's `*` or `$` stays a character.
    static func escapeText(_ text: String) -> String {
        var out = ""
        for c in text {
            if "\\`*_[]<>$#|".contains(c) { out.append("\\") }
            out.append(c)
        }
        return out
    }
}
