import NormKit

/// Reads one command's tokens (after its name) for the parsers in the command table, and words its errors:
/// what was found, what was expected, and the command's usage.
public struct ArgumentCursor {
    private(set) var tokens: [Token]
    let text: String
    let help: CommandHelp
    /// Where "nothing" is, for errors about missing arguments: just past the last token of the command.
    let endOffset: Int
    private(set) var index = 0

    init(tokens: [Token], text: String, help: CommandHelp, endOffset: Int) {
        self.tokens = tokens
        self.text = text
        self.help = help
        self.endOffset = endOffset
    }

    var isAtEnd: Bool { index >= tokens.count }
    var peek: Token? { isAtEnd ? nil : tokens[index] }

    mutating func next() -> Token? {
        guard let token = peek else { return nil }
        index += 1
        return token
    }

    /// An error at `token`, or at the end of the command when there is none.
    func error(_ message: String, at token: Token?) -> Diagnostic {
        let range = token?.range ?? endOffset..<(endOffset + 1)
        return Diagnostic(message + "\n" + usageHint, at: range, in: text)
    }

    var usageHint: String {
        "usage: " + help.usage.joined(separator: "\n       ")
    }

    func describe(_ token: Token?) -> String {
        guard let token else { return "the end of the command" }
        switch token.kind {
        case .quoted: return "\"" + Escaping.visible(token.text) + "\""
        default: return Escaping.quoted(token.text)
        }
    }

    /// Whether the bare word `flag` is among the arguments still to read (not a key= or a value); it is taken
    /// out, so it may stand anywhere: `explain forward full n=1` and `explain forward n=1 full` alike.
    mutating func takeFlag(_ flag: String) -> Bool {
        for i in index..<tokens.count where tokens[i].kind == .word && tokens[i].text == flag {
            let isKey = i + 1 < tokens.count && tokens[i + 1].kind == .equals
            let isValue = i > index && tokens[i - 1].kind == .equals
            if !isKey && !isValue {
                tokens.remove(at: i)
                return true
            }
        }
        return false
    }

    /// The value of `key=VALUE` among the arguments still to read, taken out (nil when absent), so a command can
    /// read one option before handing the rest to a shared parser (`exercise … seed=S` and `SetSelector`).
    mutating func takeOption(_ key: String) throws -> Token? {
        var i = index
        while i + 1 < tokens.count {
            if tokens[i].kind == .word && tokens[i].text == key && tokens[i + 1].kind == .equals {
                guard i + 2 < tokens.count, tokens[i + 2].kind == .word else {
                    throw error("expected a value after '\(key)='", at: i + 2 < tokens.count ? tokens[i + 2] : nil)
                }
                let value = tokens[i + 2]
                tokens.removeSubrange(i...(i + 2))
                return value
            }
            i += 1
        }
        return nil
    }

    /// Nothing may follow.
    mutating func finish() throws {
        guard let extra = peek else { return }
        throw error("unexpected \(describe(extra)): `\(help.name)` takes nothing more here", at: extra)
    }

    mutating func word(_ what: String) throws -> Token {
        guard let token = peek, token.kind == .word || token.kind == .quoted else {
            throw error("expected \(what), got \(describe(peek))", at: peek)
        }
        index += 1
        return token
    }

    mutating func expect(_ kind: Token.Kind, _ what: String) throws {
        guard let token = peek, token.kind == kind else {
            throw error("expected \(what), got \(describe(peek))", at: peek)
        }
        index += 1
    }

    /// A tensor name: a letter or _, then letters, digits or _, at most 64 characters, not a reserved word.
    mutating func name(_ what: String = "a tensor name") throws -> Located<String> {
        let token = try word(what)
        try Self.checkName(token, cursor: self)
        return Located(token.text, token.range)
    }

    static func checkName(_ token: Token, cursor: ArgumentCursor) throws {
        let text = token.text
        guard token.kind == .word, Names.isValid(text) else {
            throw cursor.error("\(cursor.describe(token)) is not a valid name: use a letter or _ followed by letters, digits or _ (at most \(Names.maxLength) characters)", at: token)
        }
        guard !Names.reserved.contains(text) else {
            throw cursor.error("\(cursor.describe(token)) is a reserved word and cannot name a tensor", at: token)
        }
    }

    mutating func keyword(_ choices: [String], _ what: String) throws -> Token {
        let token = try word(what)
        guard choices.contains(token.text) else {
            throw error("expected \(what) (\(choices.joined(separator: "|"))), got \(describe(token))", at: token)
        }
        return token
    }

    mutating func integer(_ what: String, minimum: Int? = nil, maximum: Int? = nil) throws -> Located<Int> {
        let token = try word(what)
        guard token.kind == .word, let value = Int(token.text) else {
            throw error("expected \(what), got \(describe(token))", at: token)
        }
        if let minimum, value < minimum {
            throw error("\(what) must be at least \(minimum), got \(value)", at: token)
        }
        if let maximum, value > maximum {
            throw error("\(what) must be at most \(maximum), got \(value)", at: token)
        }
        return Located(value, token.range)
    }

    mutating func number(_ what: String) throws -> Double {
        let token = try word(what)
        guard token.kind == .word, let value = Self.parseNumber(token.text) else {
            throw error("expected \(what), got \(describe(token))", at: token)
        }
        return value
    }

    /// Decimal numbers with an optional exponent, and nan / inf; not Swift's hexadecimal forms.
    static func parseNumber(_ text: String) -> Double? {
        let lower = text.lowercased()
        switch lower {
        case "nan": return .nan
        case "inf", "+inf", "infinity": return .infinity
        case "-inf", "-infinity": return -.infinity
        default: break
        }
        guard lower.allSatisfy({ $0.isASCII && ($0.isNumber || "+-.e".contains($0)) }) else { return nil }
        return Double(lower)
    }

    /// One or more dimensions, each a whole number ≥ 1.
    mutating func dims() throws -> [Int] {
        var dims: [Int] = []
        while let token = peek, token.kind == .word, !["seed", "scale", "shift"].contains(token.text) {
            guard let value = Int(token.text) else {
                if dims.isEmpty { break }
                throw error("expected a dimension (a whole number ≥ 1), got \(describe(token))", at: token)
            }
            guard value >= 1 else {
                throw error("every dimension must be at least 1, got \(value)", at: token)
            }
            dims.append(value)
            index += 1
        }
        guard !dims.isEmpty else {
            throw error("expected the dimensions (whole numbers ≥ 1), got \(describe(peek))", at: peek)
        }
        guard dims.count <= Shape.maxRank else {
            throw error("at most \(Shape.maxRank) dimensions, got \(dims.count)", at: tokens[index - 1])
        }
        return dims
    }

    /// `[ … ]` with numbers and nested lists, at most `Shape.maxRank` deep.
    mutating func literal() throws -> NestedLiteral {
        guard let open = peek, open.kind == .openBracket else {
            throw error("expected '[', got \(describe(peek))", at: peek)
        }
        index += 1
        var stack: [(open: Token, items: [NestedLiteral])] = [(open, [])]
        var expectItem = true
        while true {
            guard let token = next() else {
                throw error("this '[' is never closed", at: stack.last?.open)
            }
            switch token.kind {
            case .openBracket:
                guard expectItem else { throw error("expected ',' or ']' before '['", at: token) }
                guard stack.count < Shape.maxRank else {
                    throw error("the literal is nested more than \(Shape.maxRank) deep", at: token)
                }
                stack.append((token, []))
            case .closeBracket:
                if expectItem, !stack[stack.count - 1].items.isEmpty {
                    throw error("expected a number or '[' after ',', got ']'", at: token)
                }
                let finished = stack.removeLast()
                if finished.items.isEmpty {
                    throw error("empty list: every dimension must be at least 1", at: finished.open)
                }
                let node = NestedLiteral.list(finished.items)
                if stack.isEmpty { return node }
                stack[stack.count - 1].items.append(node)
                expectItem = false
            case .comma:
                guard !expectItem else { throw error("expected a number or '[', got ','", at: token) }
                expectItem = true
            case .word:
                guard expectItem else { throw error("expected ',' or ']', got \(describe(token))", at: token) }
                guard let value = Self.parseNumber(token.text) else {
                    throw error("expected a number, got \(describe(token))", at: token)
                }
                stack[stack.count - 1].items.append(.number(value))
                expectItem = false
            default:
                throw error("unexpected \(describe(token)) in a literal", at: token)
            }
        }
    }

    /// `key=value` pairs until the end.
    mutating func options() throws -> [(key: Token, value: Token)] {
        var pairs: [(Token, Token)] = []
        while let key = peek {
            guard key.kind == .word else { throw error("expected an option key=value, got \(describe(key))", at: key) }
            index += 1
            guard let equals = peek, equals.kind == .equals else {
                throw error("expected '=' after \(describe(key)) (options are written key=value)", at: peek)
            }
            _ = equals
            index += 1
            var value = try word("a value for \(key.text)")
            // A list value, `shape=4,5`: one token, the items joined by commas as typed.
            while let comma = peek, comma.kind == .comma {
                index += 1
                let item = try word("another value for \(key.text) after ','")
                _ = comma
                value = Token(kind: .word, text: value.text + "," + item.text, range: value.range.lowerBound..<item.range.upperBound)
            }
            pairs.append((key, value))
        }
        return pairs
    }
}

/// Rules for the names of session tensors.
public enum Names {
    public static let maxLength = 64

    /// Words with a meaning of their own where a tensor name could stand.
    public static let reserved: Set<String> = ["grad", "layer", "groups", "ones", "zeros", "randn", "rand", "arange",
                                               "full", "seed", "by", "all", "on", "off"]

    public static func isValid(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, text.unicodeScalars.count <= maxLength else { return false }
        func letter(_ s: Unicode.Scalar) -> Bool { (s >= "a" && s <= "z") || (s >= "A" && s <= "Z") || s == "_" }
        return letter(first) && text.unicodeScalars.allSatisfy { letter($0) || ($0 >= "0" && $0 <= "9") }
    }
}
