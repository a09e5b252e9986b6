/// A plain text table: a header row and aligned columns (numbers right-aligned, text left-aligned).
public struct TextTable: Sendable {
    public var headers: [String]
    public var rows: [[String]] = []
    /// Columns whose cells are right-aligned.
    public var numericColumns: Set<Int> = []

    public init(headers: [String], rows: [[String]] = [], numericColumns: Set<Int> = []) {
        self.headers = headers
        self.rows = rows
        self.numericColumns = numericColumns
    }

    public func render(style: Style) -> String {
        let widths = headers.indices.map { column in
            ([headers[column]] + rows.map { column < $0.count ? $0[column] : "" }).map(\.count).max() ?? 0
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { column, text in
                let pad = String(repeating: " ", count: widths[column] - text.count)
                return numericColumns.contains(column) ? pad + text : text + pad
            }.joined(separator: "  ").trimmingTrailingSpaces()
        }
        var out = [style.header(line(headers))]
        out += rows.map(line)
        return out.joined(separator: "\n")
    }
}

extension String {
    func trimmingTrailingSpaces() -> String {
        var s = self
        while s.last == " " { s.removeLast() }
        return s
    }
}

/// Colour where it helps reading, nothing when colour is off.
public struct Style: Sendable {
    public var color: Bool

    public init(color: Bool) { self.color = color }

    func paint(_ text: String, _ code: String) -> String {
        color ? "\u{1B}[\(code)m" + text + "\u{1B}[0m" : text
    }

    func header(_ text: String) -> String { paint(text, "1") }
    func error(_ text: String) -> String { paint(text, "1;31") }
    func warning(_ text: String) -> String { paint(text, "1;33") }
    func note(_ text: String) -> String { paint(text, "36") }
    func group(_ text: String, _ index: Int) -> String {
        let palette = ["34", "32", "35", "33", "36", "31"]
        return paint(text, palette[index % palette.count])
    }
}
