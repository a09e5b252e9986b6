/// A recorded session as one self-contained HTML page: styles inline, no script, no network. Commands and their
/// output as the terminal showed them; `explain`'s steps as MathML with the engine's numbers; `hist` and
/// `show axes` as SVG. Prints cleanly (no block is split across pages where the browser can avoid it).
public struct HandoutHTML {
    public let title: String
    /// "recorded with NormLab 1.4.0 on 2026-11-30 18:02 UTC"
    public let subtitle: String

    public init(title: String, subtitle: String) {
        self.title = title
        self.subtitle = subtitle
    }

    public func document(_ entries: [HandoutEntry]) -> String {
        var body = ""
        var open = false
        var narrative: [String] = []
        func flushNarrative() {
            guard !narrative.isEmpty else { return }
            body += "<p class=\"narrative\">" + narrative.map(HTML.escape).joined(separator: "<br>") + "</p>\n"
            narrative = []
        }
        // Plain output of one command in one block, as the terminal shows it.
        var output = ""
        func flushOutput() {
            guard !output.isEmpty else { return }
            body += "<pre class=\"output\">" + HTML.escape(output) + "</pre>\n"
            output = ""
        }
        for entry in entries {
            if Self.isPlain(entry.block) {
                flushNarrative()
                output += entry.renderer.render(entry.block)
                continue
            }
            flushOutput()
            switch entry.block {
            case .narrative(let line):
                if open { body += "</section>\n"; open = false }
                let text = Self.comment(line)
                if text.isEmpty { flushNarrative() } else { narrative.append(text) }
            case .echo(let statement):
                flushNarrative()
                if open { body += "</section>\n" }
                body += "<section class=\"command\">\n<pre class=\"input\"><span class=\"prompt\">normlab&gt;</span> "
                    + HTML.escape(statement) + "</pre>\n"
                open = true
            default:
                flushNarrative()
                body += fragment(entry)
            }
        }
        flushOutput()
        flushNarrative()
        if open { body += "</section>\n" }
        return """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="generator" content="NormLab">
        <title>\(HTML.escape(title))</title>
        <style>
        \(Self.style)
        </style>
        </head>
        <body>
        <main>
        <h1>\(HTML.escape(title))</h1>
        <p class="subtitle">\(HTML.escape(subtitle))</p>
        \(body)</main>
        </body>
        </html>

        """
    }

    /// Output shown as the terminal's text, merged with its neighbours into one block.
    static func isPlain(_ block: Block) -> Bool {
        switch block {
        case .text, .groupLine, .fields, .table, .tensor, .diagnosis: true
        default: false
        }
    }

    /// "# A first GroupNorm" → "A first GroupNorm"; a blank line → "".
    static func comment(_ line: String) -> String {
        var text = line.trimmed()
        while text.hasPrefix("#") { text.removeFirst() }
        return text.trimmed()
    }

    func fragment(_ entry: HandoutEntry) -> String {
        let terminal = entry.renderer
        switch entry.block {
        case .derivation(let derivation):
            return derivationHTML(derivation)
        case .histograms(let pictures):
            let most = pictures.compactMap { $0.counts.max() }.max() ?? 1
            return "<div class=\"figure histograms\">" + pictures.map { HandoutSVG.histogram($0, tallest: most, precision: terminal.precision) }.joined()
                + "</div>\n"
        case .axes(let picture):
            return "<div class=\"figure axes\">" + HandoutSVG.axes(picture) + "</div>\n"
                + "<p class=\"caption\">" + HTML.escape(terminal.plain("■ = the \(picture.memberCount) elements that share one \(picture.setWords): \(picture.label). Every other set has the same shape: \(picture.reducedOver).")) + "</p>\n"
        case .verdict(let verdict):
            return "<pre class=\"output verdict \(verdict.passed ? "pass" : "fail")\">" + HTML.escape(terminal.render(entry.block)) + "</pre>\n"
        case .warning, .note, .interrupted:
            return "<pre class=\"output warning\">" + HTML.escape(terminal.render(entry.block)) + "</pre>\n"
        case .error:
            return "<pre class=\"output error\">" + HTML.escape(terminal.render(entry.block)) + "</pre>\n"
        default:
            return "<pre class=\"output\">" + HTML.escape(terminal.render(entry.block)) + "</pre>\n"
        }
    }

    func derivationHTML(_ derivation: Derivation) -> String {
        var html = "<div class=\"derivation\">\n<p class=\"derivation-title\">\(HTML.escape(derivation.title))</p>\n"
        var step = 0
        var inStep = false
        func closeStep() { if inStep { html += "</div>\n"; inStep = false } }
        for line in derivation.lines {
            switch line {
            case .text(let text):
                closeStep()
                html += "<p class=\"line\">" + Self.mixed(text) + "</p>\n"
            case .step(let formula, let value):
                closeStep()
                step += 1
                let line = "<div class=\"step\"><span class=\"n\">\(step).</span> "
                    + Self.html(MathNotation.pieces(formula: formula, value: value))
                html += line + "</div>\n"
            case .heading(let text):
                closeStep()
                step += 1
                html += "<div class=\"step\"><span class=\"n\">\(step).</span> " + Self.mixed(text) + "\n"
                inStep = true
            case .detail(let text):
                html += "<p class=\"detail\">" + Self.mixed(text) + "</p>\n"
            }
        }
        closeStep()
        return html + "</div>\n"
    }

    /// A line whose leading equation is MathML, the rest prose.
    static func mixed(_ text: String) -> String { html(MathNotation.pieces(line: text)) }

    static func html(_ pieces: [MathNotation.Piece]) -> String {
        pieces.map { piece in
            switch piece {
            case .math(let formula): MathNotation.mathML(formula)
            case .prose(let text): pieces.count == 1 ? HTML.escape(text) : "<span class=\"prose\">" + HTML.escape(text) + "</span>"
            }
        }.joined(separator: " ")
    }

    static let style = """
    :root { color-scheme: light; --ink: #1d2330; --muted: #5b6475; --rule: #d8dde6; --code: #f5f7fa; --mark: #c2410c; }
    body { margin: 0; color: var(--ink); background: #fff; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; }
    main { max-width: 56rem; margin: 0 auto; padding: 2rem 1.5rem 4rem; }
    h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
    .subtitle { color: var(--muted); margin: 0 0 2rem; }
    .narrative { margin: 1.5rem 0 .5rem; }
    section.command { margin: .75rem 0 1.25rem; break-inside: avoid; }
    pre { font: 13px/1.4 ui-monospace, "DejaVu Sans Mono", Menlo, monospace; background: var(--code);
          border: 1px solid var(--rule); border-radius: 4px; padding: .5rem .75rem; margin: .25rem 0; overflow-x: auto; }
    pre.input { background: #eef2ff; border-color: #c7d2fe; font-weight: 600; }
    .prompt { color: var(--muted); font-weight: 400; }
    pre.warning { background: #fff7ed; border-color: #fed7aa; }
    pre.error { background: #fef2f2; border-color: #fecaca; }
    pre.verdict.pass { border-left: 4px solid #15803d; }
    pre.verdict.fail { border-left: 4px solid #b91c1c; }
    .derivation { border: 1px solid var(--rule); border-radius: 4px; padding: .5rem .9rem; margin: .25rem 0; }
    .derivation-title { font-weight: 600; margin: .25rem 0 .5rem; }
    .derivation .line, .derivation .detail { margin: .2rem 0; }
    .derivation .detail { margin-left: 2rem; }
    .step { margin: .35rem 0; }
    .step .n { display: inline-block; min-width: 1.75rem; color: var(--muted); }
    .prose { color: var(--muted); }
    math { font-size: 1.05em; }
    .figure { display: flex; flex-wrap: wrap; gap: 1rem; margin: .5rem 0; }
    .figure svg { max-width: 100%; height: auto; }
    .caption { color: var(--muted); margin: .25rem 0; }
    @media print {
      body { font-size: 11pt; }
      main { max-width: none; padding: 0; }
      pre { white-space: pre-wrap; }
      section.command, .derivation, .figure { break-inside: avoid; }
    }
    """
}

/// One recorded block, with the terminal renderer (precision, threshold, unicode) it was shown with.
public struct HandoutEntry {
    public let block: Block
    public let renderer: TerminalRenderer

    public init(block: Block, renderer: TerminalRenderer) {
        self.block = block
        self.renderer = renderer
    }
}
