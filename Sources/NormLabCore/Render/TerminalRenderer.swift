import NormKit

/// Words a `Block` for the terminal (or a transcript): colour where allowed, ASCII where the locale is not
/// UTF-8, tensors NumPy-style at the session's precision and threshold.
public struct TerminalRenderer: Sendable {
    public var style: Style
    /// Off: math symbols and block characters spelled in ASCII.
    public var unicode: Bool
    public var precision: Int
    public var threshold: Int

    public init(style: Style, unicode: Bool, precision: Int, threshold: Int) {
        self.style = style
        self.unicode = unicode
        self.precision = precision
        self.threshold = threshold
    }

    /// The block's text, every line ending in a newline.
    public func render(_ block: Block) -> String {
        switch block {
        case .echo(let statement):
            let lines = statement.split(separator: "\n", omittingEmptySubsequences: false)
            return lines.enumerated().map { i, line in plain((i == 0 ? "normlab> " : "     ... ") + line) + "\n" }.joined()
        case .narrative(let line):
            return plain(line) + "\n"
        case .text(let text):
            return plain(text) + "\n"
        case .groupLine(let text, let group):
            return plain("  " + style.group(text, group)) + "\n"
        case .fields(let rows):
            let width = rows.map(\.key.count).max() ?? 0
            return rows.map { plain("  " + $0.key + String(repeating: " ", count: width - $0.key.count + 2) + $0.value) + "\n" }.joined()
        case .table(let table):
            return plain(table.render(style: style)) + "\n"
        case .tensor(let view):
            let formatter = TensorFormatter(precision: precision, threshold: threshold)
            return plain(view.headline) + "\n" + plain(formatter.render(view.tensor)) + "\n"
        case .derivation(let derivation):
            return derivationText(derivation)
        case .histograms(let pictures):
            return histogramsText(pictures)
        case .axes(let picture):
            return axesText(picture)
        case .verdict(let verdict):
            var text = plain("\(verdict.what): \(verdict.passed ? style.note("PASS") : style.error("FAIL")) — \(verdict.summary)") + "\n"
            for note in verdict.notes { text += plain("  " + note) + "\n" }
            if let worst = verdict.worst { text += plain(worst.render(style: style)) + "\n" }
            return text
        case .diagnosis(let view):
            return DiagnosisWords.lines(view).map { plain($0) + "\n" }.joined()
        case .warning(let text, let origin):
            return Self.prefix(origin) + style.warning("warning:") + " " + plain(text) + "\n"
        case .note(let text):
            return style.note("note:") + " " + plain(text) + "\n"
        case .error(let diagnostic, let origin, let trace):
            var lines = diagnostic.message.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            let first = lines.isEmpty ? "" : lines.removeFirst()
            var text = Self.prefix(origin) + style.error("error:") + " " + first + "\n"
            for line in diagnostic.caretLines + lines { text += line + "\n" }
            for outer in trace.reversed() { text += "  in `run` at \(outer.source):\(outer.line)\n" }
            return plain(text)
        case .interrupted(let message, let newlineFirst):
            return (newlineFirst ? "\n" : "") + style.warning("interrupted:") + " " + message + "; the session is as it was before\n"
        }
    }

    /// With `set unicode off`, math symbols and block characters spelled in ASCII, except in the user's own
    /// words (marked by `Escaping`); the marks are removed either way.
    func plain(_ text: String) -> String {
        guard text.contains(Escaping.userTextStart) else { return unicode ? text : ASCII.transliterate(text) }
        var out = "", outside = "", inside = ""
        var inUserText = false
        for character in text {
            switch character {
            case Escaping.userTextStart:
                out += unicode ? outside : ASCII.transliterate(outside)
                outside = ""
                inUserText = true
            case Escaping.userTextEnd:
                out += inside
                inside = ""
                inUserText = false
            default:
                if inUserText { inside.append(character) } else { outside.append(character) }
            }
        }
        return out + inside + (unicode ? outside : ASCII.transliterate(outside))
    }

    static func prefix(_ origin: Origin) -> String {
        origin.source == Origin.interactive.source ? "" : "\(origin.source):\(origin.line): "
    }

    func derivationText(_ derivation: Derivation) -> String {
        var lines = [derivation.title]
        var step = 0
        for line in derivation.lines {
            switch line {
            case .text(let text): lines.append("  " + text)
            case .step(let formula, let value):
                step += 1
                lines.append("  \(step). " + formula + " = " + value)
            case .heading(let text):
                step += 1
                lines.append("  \(step). " + text)
            case .detail(let text): lines.append("     " + text)
            }
        }
        return lines.map { plain($0) + "\n" }.joined()
    }

    func histogramsText(_ pictures: [HistogramPicture]) -> String {
        // One scale for panels side by side: the tallest bar of all of them is the full width.
        let tallest = pictures.compactMap { $0.counts.max() }.max() ?? 1
        let columns = pictures.map { histogramLines($0, tallest: tallest) }
        guard columns.count == 2 else { return columns.flatMap { $0 }.map { plain($0) + "\n" }.joined() }
        let width = columns[0].map(\.count).max() ?? 0
        var text = ""
        for i in 0..<max(columns[0].count, columns[1].count) {
            let left = i < columns[0].count ? columns[0][i] : ""
            let right = i < columns[1].count ? columns[1][i] : ""
            text += plain((left + String(repeating: " ", count: width - left.count + 4) + right).trimmingTrailingSpaces()) + "\n"
        }
        return text
    }

    func histogramLines(_ picture: HistogramPicture, tallest: Int? = nil, barWidth: Int = 24) -> [String] {
        guard let (low, high) = picture.range else {
            return ["\(picture.title): no finite values (\(picture.total) NaN or Inf)"]
        }
        let p = min(precision, 3)
        let labels = picture.counts.indices.map { formatNumber(picture.edges[$0], precision: p) }
        let labelWidth = labels.map(\.count).max() ?? 0
        let finite = picture.total - picture.nonFinite
        var lines = ["\(picture.title): \(finite) values in [\(formatNumber(low, precision: p)), \(formatNumber(high, precision: p))]" + (picture.nonFinite > 0 ? ", \(picture.nonFinite) NaN/Inf left out" : "")]
        let most = max(1, tallest ?? picture.counts.max() ?? 1)
        let eighths = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"]
        for (b, count) in picture.counts.enumerated() {
            let length = Double(count) / Double(most) * Double(barWidth)
            let full = Int(length)
            let part = Int((length - Double(full)) * 8)
            let bar = String(repeating: "█", count: full) + eighths[part]
            let label = String(repeating: " ", count: labelWidth - labels[b].count) + labels[b]
            let padded = bar + String(repeating: " ", count: max(0, barWidth + 1 - full - (part > 0 ? 1 : 0)))
            lines.append("  \(label) │\(padded)\(count)")
        }
        return lines
    }

    func axesText(_ picture: AxesPicture) -> String {
        var lines = [picture.title, picture.headline + picture.spatialNote]
        let positions = picture.positionIndices.count
        let cutBefore = (picture.positionIndices.first ?? 0) > 0
        let cutAfter = (picture.positionIndices.last ?? 0) < picture.positions - 1
        let cellsWidth = positions + (cutBefore ? 1 : 0) + (cutAfter ? 1 : 0)
        let width = max(cellsWidth, 8)
        let labelWidth = max(8, (picture.channelIndices.map { "  \(picture.channelWord) \($0)".count }.max() ?? 0) + 2)
        var header = String(repeating: " ", count: labelWidth)
        if (picture.samples.first ?? 0) > 0 { header += "… " }
        for n in picture.samples {
            let title = "\(picture.sampleWord) \(n)"
            header += title + String(repeating: " ", count: max(1, width + 3 - title.count))
        }
        if (picture.samples.last ?? 0) < picture.batch - 1 { header += "…" }
        lines.append(header.trimmingTrailingSpaces())
        if (picture.channelIndices.first ?? 0) > 0 { lines.append("  …") }
        for (ci, c) in picture.channelIndices.enumerated() {
            let label = "  \(picture.channelWord) \(c)"
            var row = label + String(repeating: " ", count: labelWidth - label.count)
            if (picture.samples.first ?? 0) > 0 { row += "  " }
            for ni in picture.samples.indices {
                var cells = cutBefore ? "…" : ""
                for si in 0..<positions { cells += picture.marked[ni][ci][si] ? style.group("■", 0) : "." }
                if cutAfter { cells += "…" }
                row += cells + String(repeating: " ", count: max(1, width + 3 - cellsWidth))
            }
            lines.append(row.trimmingTrailingSpaces())
        }
        if (picture.channelIndices.last ?? 0) < picture.channels - 1 { lines.append("  …") }
        lines.append("■ = the \(picture.memberCount) elements that share one \(picture.setWords): \(picture.label).")
        lines.append("Every other set has the same shape: " + picture.reducedOver + ".")
        return lines.map { plain($0) + "\n" }.joined()
    }
}
