/// Where a statement came from: a file (or `-c`, `<stdin>`, the terminal) and the line it began on.
public struct Origin: Equatable, Sendable {
    public let source: String
    public let line: Int

    public init(source: String, line: Int) {
        self.source = source
        self.line = line
    }

    public static let interactive = Origin(source: "<terminal>", line: 1)
}

/// An error for the user: what was wrong and what was expected, and where, when there is a token to point at.
public struct Diagnostic: Error, Equatable, Sendable {
    public let message: String
    /// Character offsets into `text`, the statement as typed (possibly several lines).
    public let range: Range<Int>?
    public let text: String?
    /// A file and line for errors that happen inside `run FILE`; the innermost comes first.
    public var trace: [Origin] = []

    public init(_ message: String, at range: Range<Int>? = nil, in text: String? = nil) {
        self.message = message
        self.range = range
        self.text = text
    }

    /// The line holding the offending token and a caret line under it, or nothing when there is no token.
    public var caretLines: [String] {
        guard let range, let text else { return [] }
        let characters = Array(text)
        guard range.lowerBound <= characters.count else { return [] }
        var lineStart = range.lowerBound
        while lineStart > 0 && characters[lineStart - 1] != "\n" { lineStart -= 1 }
        var lineEnd = range.lowerBound
        while lineEnd < characters.count && characters[lineEnd] != "\n" { lineEnd += 1 }
        let line = String(characters[lineStart..<lineEnd])
        let column = range.lowerBound - lineStart
        let width = max(1, min(range.upperBound, lineEnd) - range.lowerBound)
        let caret = String(repeating: " ", count: column) + "^" + String(repeating: "~", count: width - 1)
        return ["  " + Escaping.visible(line), "  " + caret]
    }
}

/// Showing user text safely: control characters (an ANSI escape in a pasted name, a NUL) would reach the
/// terminal as commands, so they are printed as escapes.
public enum Escaping {
    /// Around the user's own words in a message: the renderer never spells them in ASCII (under `set unicode off`
    /// or a non-UTF-8 locale only NormLab's symbols are transliterated, so `μx` is not reported as `mux`), and
    /// removes the marks. Private-use characters, which no user text here can contain unescaped.
    static let userTextStart: Character = "\u{E000}"
    static let userTextEnd: Character = "\u{E001}"

    public static func visible(_ text: String) -> String {
        var out = String(userTextStart)
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x09: out += " "
            case 0x00..<0x20, 0x7F, 0x80..<0xA0, 0xE000, 0xE001:
                out += "\\u{\(String(scalar.value, radix: 16))}"
            case RawBytes.base...(RawBytes.base + 0xFF):
                out += String(printf: "\\x%02x", scalar.value - RawBytes.base)  // a byte that is not UTF-8
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + String(userTextEnd)
    }

    /// The text without the marks around user words, for text that does not go through a renderer.
    public static func removingMarks(_ text: String) -> String {
        text.filter { $0 != userTextStart && $0 != userTextEnd }
    }

    /// A name or word quoted for a message.
    public static func quoted(_ text: String) -> String {
        "'" + visible(text.count > 60 ? String(text.prefix(57)) + "…" : text) + "'"
    }
}
