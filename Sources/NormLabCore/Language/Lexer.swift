/// A piece of a command line. Positions are character offsets into the statement's text, so a diagnostic can put
/// a caret under the token.
public struct Token: Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        /// Anything else: command names, tensor names, numbers, paths, option keys and values.
        case word
        /// Text in double quotes (a path with spaces); `text` holds it without the quotes.
        case quoted
        case equals
        case openBracket
        case closeBracket
        case comma
        case semicolon
    }

    public let kind: Kind
    public let text: String
    public let range: Range<Int>
}

/// Splitting a line into tokens. `#` starts a comment (outside quotes); `=`, `[`, `]`, `,` and `;` are tokens of
/// their own; everything else between them and white space is a word.
public enum Lexer {
    public struct Failure: Error, Equatable {
        public let message: String
        public let range: Range<Int>
    }

    public static func tokens(_ text: String) throws(Failure) -> [Token] {
        let characters = Array(text)
        var tokens: [Token] = []
        var i = 0
        while i < characters.count {
            let c = characters[i]
            if c == "#" {
                // A comment runs to the end of its line; a statement continued over lines goes on after it.
                while i < characters.count && characters[i] != "\n" { i += 1 }
                continue
            }
            if c.isWhitespace {
                i += 1
                continue
            }
            if let kind = Self.punctuation[c] {
                tokens.append(Token(kind: kind, text: String(c), range: i..<(i + 1)))
                i += 1
                continue
            }
            if c == "\"" {
                var j = i + 1
                while j < characters.count && characters[j] != "\"" { j += 1 }
                guard j < characters.count else {
                    throw Failure(message: "this quote is never closed", range: i..<(i + 1))
                }
                tokens.append(Token(kind: .quoted, text: String(characters[(i + 1)..<j]), range: i..<(j + 1)))
                i = j + 1
                continue
            }
            var j = i
            while j < characters.count {
                let d = characters[j]
                if d.isWhitespace || d == "#" || d == "\"" || Self.punctuation[d] != nil { break }
                j += 1
            }
            tokens.append(Token(kind: .word, text: String(characters[i..<j]), range: i..<j))
            i = j
        }
        return tokens
    }

    static let punctuation: [Character: Token.Kind] = [
        "=": .equals, "[": .openBracket, "]": .closeBracket, ",": .comma, ";": .semicolon,
    ]

    /// How many `[` are still open at the end of `text` (quotes and comments taken into account); a statement with
    /// unclosed brackets continues on the next line.
    public static func openBrackets(in text: String) -> Int {
        unclosedBrackets(in: text).count
    }

    /// The offsets of the `[` still open at the end of `text`, outermost first.
    public static func unclosedBrackets(in text: String) -> [Int] {
        var open: [Int] = []
        var inQuote = false
        var inComment = false
        for (offset, c) in text.enumerated() {
            if inComment {
                if c == "\n" { inComment = false }
                continue
            }
            if inQuote {
                if c == "\"" { inQuote = false }
                continue
            }
            switch c {
            case "\"": inQuote = true
            case "#": inComment = true
            case "[": open.append(offset)
            case "]": _ = open.popLast()
            default: break
            }
        }
        return open
    }
}
