/// NormLab's formulas as the terminal shows them ("σ² = Σ(x − μ)² / m", "rstd = (σ² + eps)^(−½)") turned into
/// MathML for HTML handouts and LaTeX for Markdown ones. One reader of the notation, two writers: the formulas
/// are written once, in `explain`, and every format follows them.
///
/// The notation: numbers (a sign directly before digits belongs to the number when nothing precedes it that it
/// could subtract from), identifiers (Greek and Latin letters, x̂ with its combining hat, words such as rstd),
/// operators, ² and ³, `^(…)` for other exponents, `√(…)`, brackets, and `…`. Prose after the math — "(18
/// values)", "(eval mode: …)", "with γ and β per element" — is split off by `split` and shown as text.
public enum MathNotation {
    indirect enum Node: Equatable {
        case number(String)
        case identifier(String, hat: Bool)
        case op(String)
        case group(open: String, [Node], close: String)
        case power(Node, [Node])
        case root([Node])
    }

    /// Words that are math in NormLab's formulas; any other word of three or more letters starts prose.
    static let mathWords: Set<String> = ["rstd", "eps", "ms", "running_mean", "running_var", "var", "mean", "std"]

    /// The math and the prose after it: "[0.1, 0.2]  (18 values)" → ("[0.1, 0.2]", "(18 values)").
    public static func split(_ text: String) -> (math: String, prose: String) {
        let characters = Array(text)
        var index = 0
        while index < characters.count {
            guard characters[index].isASCII, characters[index].isLetter || characters[index] == "_" else {
                index += 1
                continue
            }
            var end = index
            while end < characters.count, characters[end].isASCII, characters[end].isLetter || characters[end] == "_" { end += 1 }
            let word = String(characters[index..<end])
            // A word glued to a hat or digits is an identifier (x̂, dx); prose words stand alone.
            let glued = end < characters.count && (characters[end].unicodeScalars.first?.properties.isDiacritic ?? false)
            if word.count >= 3 && !mathWords.contains(word) && !glued {
                // Prose in brackets starts at its bracket: "[…]  (18 values)" splits before "(18".
                var start = index
                var depth = 0
                var scan = index - 1
                while scan >= 0 {
                    let c = characters[scan]
                    if c == ")" || c == "]" { depth += 1 } else if c == "(" || c == "[" {
                        if depth == 0 { start = scan; break }
                        depth -= 1
                    }
                    scan -= 1
                }
                while start > 0, characters[start - 1] == " " { start -= 1 }
                let math = String(characters[..<start]).trimmed()
                return (math, String(characters[start...]).trimmed())
            }
            index = end
        }
        return (text.trimmed(), "")
    }

    /// A piece of a derivation line: math to typeset, or prose to show as text.
    public enum Piece: Equatable, Sendable {
        case math(String)
        case prose(String)
    }

    /// A step "formula = value" as pieces in order: "dx = ∂x̂·rstd", "(eval mode: …)", "= [0.1, …]", "(18 values)".
    public static func pieces(formula: String, value: String) -> [Piece] {
        let (formulaMath, formulaProse) = split(formula)
        let (valueMath, valueProse) = split(value)
        var out: [Piece] = formulaProse.isEmpty
            ? [.math(formulaMath + " = " + valueMath)]
            : [.math(formulaMath), .prose(formulaProse), .math("= " + valueMath)]
        if !valueProse.isEmpty { out.append(.prose(valueProse)) }
        return out
    }

    /// A line that may start with math ("x = [0.98, …]  (18 values)") and go on in prose; all prose when it does
    /// not start with an equation.
    public static func pieces(line text: String) -> [Piece] {
        let (math, prose) = split(text)
        guard !math.isEmpty, math.contains("=") else { return [.prose(text)] }
        return prose.isEmpty ? [.math(math)] : [.math(math), .prose(prose)]
    }

    // MARK: - Reading

    static let superscripts: [Character: String] = ["²": "2", "³": "3"]
    static let operators: Set<Character> = ["=", "+", "−", "-", "·", "×", "/", "÷", ",", ":", ";", "Σ", "∂", "…", "≈", "→", "<", ">", "≤", "≥", "|", "!"]
    static let closing: [Character: Character] = ["(": ")", "[": "]", "{": "}"]

    /// The formula as a tree. Never fails: characters it does not know become operators, shown as they are.
    static func parse(_ text: String) -> [Node] {
        var reader = Reader(characters: Array(text))
        return reader.sequence(until: nil)
    }

    struct Reader {
        let characters: [Character]
        var index = 0

        mutating func sequence(until close: Character?) -> [Node] {
            var nodes: [Node] = []
            while index < characters.count {
                let c = characters[index]
                if let close, c == close { return nodes }
                if c == " " || c == "\t" { index += 1; continue }
                if let power = MathNotation.superscripts[c] {
                    index += 1
                    let base = nodes.popLast() ?? .op("")
                    nodes.append(.power(base, [.number(power)]))
                    continue
                }
                if c == "^" {
                    index += 1
                    let base = nodes.popLast() ?? .op("")
                    if index < characters.count, characters[index] == "(" {
                        index += 1
                        let exponent = sequence(until: ")")
                        if index < characters.count { index += 1 }
                        nodes.append(.power(base, exponent))
                    } else {
                        nodes.append(.power(base, atom().map { [$0] } ?? []))
                    }
                    continue
                }
                if c == "√" {
                    index += 1
                    if index < characters.count, characters[index] == "(" {
                        index += 1
                        let inside = sequence(until: ")")
                        if index < characters.count { index += 1 }
                        nodes.append(.root(inside))
                    } else {
                        nodes.append(.root(atom().map { [$0] } ?? []))
                    }
                    continue
                }
                if let closeCharacter = MathNotation.closing[c] {
                    index += 1
                    let inside = sequence(until: closeCharacter)
                    let closed = index < characters.count
                    if closed { index += 1 }
                    nodes.append(.group(open: String(c), inside, close: closed ? String(closeCharacter) : ""))
                    continue
                }
                if (c == "-" || c == "−"), startsSignedNumber(after: nodes) {
                    index += 1
                    if case .number(let digits)? = atom() { nodes.append(.number("-" + digits)) }
                    continue
                }
                if let node = atom() { nodes.append(node) } else { nodes.append(.op(String(c))); index += 1 }
            }
            return nodes
        }

        /// A sign begins a number when digits follow and nothing before it could be subtracted from.
        func startsSignedNumber(after nodes: [Node]) -> Bool {
            guard index + 1 < characters.count, characters[index + 1].isASCII, characters[index + 1].isNumber else { return false }
            guard let last = nodes.last else { return true }
            if case .op(let o) = last { return o != "…" }
            return false
        }

        /// A number or an identifier at the cursor, or nil.
        mutating func atom() -> Node? {
            guard index < characters.count else { return nil }
            let c = characters[index]
            if (c.isASCII && c.isNumber) || c == "½" {
                if c == "½" { index += 1; return .number("½") }
                var text = ""
                while index < characters.count, characters[index].isASCII,
                      characters[index].isNumber || characters[index] == "." {
                    text.append(characters[index]); index += 1
                }
                // An exponent: 1e-05, 2.5e+10.
                if index + 1 < characters.count, characters[index] == "e",
                   characters[index + 1].isNumber || ((characters[index + 1] == "-" || characters[index + 1] == "+")
                                                      && index + 2 < characters.count && characters[index + 2].isNumber) {
                    text.append("e"); index += 1
                    if characters[index] == "-" || characters[index] == "+" { text.append(characters[index]); index += 1 }
                    while index < characters.count, characters[index].isASCII, characters[index].isNumber {
                        text.append(characters[index]); index += 1
                    }
                }
                return .number(text)
            }
            if c.isLetter || c == "_" {
                if c.isASCII {
                    var word = ""
                    while index < characters.count, characters[index].isASCII,
                          characters[index].isLetter || characters[index] == "_" {
                        word.append(characters[index]); index += 1
                    }
                    return identifier(word)
                }
                index += 1
                return identifier(String(c))
            }
            if MathNotation.operators.contains(c) { index += 1; return .op(String(c)) }
            return nil
        }

        /// x̂ is written x followed by U+0302; Swift reads the pair as one Character, so the hat is in the word.
        func identifier(_ word: String) -> Node {
            var scalars = String.UnicodeScalarView()
            var hat = false
            for scalar in word.unicodeScalars {
                if scalar == "\u{0302}" { hat = true } else { scalars.append(scalar) }
            }
            return .identifier(String(scalars), hat: hat)
        }
    }

    // MARK: - Writing

    /// "1e-05" → ("1", "-5"), "-2.5e+10" → ("-2.5", "10"): a number in scientific notation as typeset.
    static func scientific(_ number: String) -> (mantissa: String, exponent: String)? {
        guard let e = number.firstIndex(of: "e") else { return nil }
        let mantissa = String(number[..<e])
        var exponent = String(number[number.index(after: e)...])
        var negative = false
        if exponent.hasPrefix("+") { exponent.removeFirst() } else if exponent.hasPrefix("-") { negative = true; exponent.removeFirst() }
        while exponent.count > 1 && exponent.hasPrefix("0") { exponent.removeFirst() }
        guard !mantissa.isEmpty, !exponent.isEmpty else { return nil }
        return (mantissa, (negative ? "-" : "") + exponent)
    }

    /// `<math>` with the formula in presentation MathML.
    public static func mathML(_ text: String, display: Bool = false) -> String {
        let body = parse(text).map(mathML).joined()
        return "<math\(display ? " display=\"block\"" : "")><mrow>\(body)</mrow></math>"
    }

    static func mathML(_ node: Node) -> String {
        switch node {
        case .number(let n):
            if let (mantissa, exponent) = scientific(n) {
                let power = "<msup><mn>10</mn><mn>\(HTML.escape(exponent.replacingMinus()))</mn></msup>"
                return mantissa == "1" ? power : "<mrow><mn>\(HTML.escape(mantissa.replacingMinus()))</mn><mo>×</mo>\(power)</mrow>"
            }
            return "<mn>\(HTML.escape(n.replacingMinus()))</mn>"
        case .identifier(let name, let hat):
            let base = "<mi>\(HTML.escape(name))</mi>"
            return hat ? "<mover accent=\"true\">\(base)<mo>^</mo></mover>" : base
        case .op(let o):
            return o.isEmpty ? "" : "<mo>\(HTML.escape(o == "-" ? "−" : o))</mo>"
        case .group(let open, let inside, let close):
            return "<mrow><mo>\(HTML.escape(open))</mo>\(inside.map(mathML).joined())"
                + (close.isEmpty ? "" : "<mo>\(HTML.escape(close))</mo>") + "</mrow>"
        case .power(let base, let exponent):
            return "<msup>\(mathML(base))<mrow>\(exponent.map(mathML).joined())</mrow></msup>"
        case .root(let inside):
            return "<msqrt>\(inside.map(mathML).joined())</msqrt>"
        }
    }

    static let latexNames: [String: String] = [
        "α": "\\alpha", "β": "\\beta", "γ": "\\gamma", "δ": "\\delta", "ε": "\\varepsilon", "μ": "\\mu", "σ": "\\sigma",
        "Σ": "\\sum", "∂": "\\partial", "·": "\\cdot", "×": "\\times", "÷": "\\div", "−": "-", "…": "\\ldots",
        "≈": "\\approx", "→": "\\to", "≤": "\\le", "≥": "\\ge", "½": "\\tfrac{1}{2}", "|": "\\vert ",
        "{": "\\{", "}": "\\}", "!": "!",
    ]

    /// The formula in LaTeX (for `$…$` or `$$…$$` in Markdown).
    public static func latex(_ text: String) -> String {
        parse(text).map(latex).joined(separator: " ")
    }

    static func latex(_ node: Node) -> String {
        switch node {
        case .number(let n):
            if let (mantissa, exponent) = scientific(n) {
                return (mantissa == "1" ? "" : mantissa + " \\times ") + "10^{\(exponent)}"
            }
            return n == "½" ? "\\tfrac{1}{2}" : n
        case .identifier(let name, let hat):
            var base = latexNames[name] ?? (name.count > 1 ? "\\mathrm{\(name.replacing("_", with: "\\_"))}" : name)
            if hat { base = "\\hat{\(base)}" }
            return base
        case .op(let o):
            return latexNames[o] ?? o
        case .group(let open, let inside, let close):
            let left = latexNames[open] ?? open, right = close.isEmpty ? "" : (latexNames[close] ?? close)
            return left + inside.map(latex).joined(separator: " ") + right
        case .power(let base, let exponent):
            return "{\(latex(base))}^{\(exponent.map(latex).joined(separator: " "))}"
        case .root(let inside):
            return "\\sqrt{\(inside.map(latex).joined(separator: " "))}"
        }
    }
}

extension String {
    /// "-4.2" with a true minus sign, as typeset mathematics writes it.
    func replacingMinus() -> String { hasPrefix("-") ? "−" + dropFirst() : self }
}

/// Escaping for HTML text and attribute values.
public enum HTML {
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for c in text {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }
}
