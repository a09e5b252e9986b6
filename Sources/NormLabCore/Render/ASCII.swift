/// The ASCII spelling of NormLab's Unicode: for terminals and locales without UTF-8.
enum ASCII {
    static let table: [(String, String)] = [
        ("x̂", "xhat"), ("∂", "d"), ("μ", "mu"), ("σ²", "var"), ("σ", "sigma"), ("γ", "gamma"), ("β", "beta"),
        ("Σ", "sum "), ("−", "-"), ("·", "*"), ("×", "x"), ("÷", "/"), ("≤", "<="), ("≥", ">="), ("≈", "~"),
        ("√", "sqrt"), ("½", "1/2"), ("²", "^2"), ("→", "->"), ("…", "..."), ("–", "-"), ("—", "-"),
        ("■", "#"), ("│", "|"), ("█", "#"), ("▏", ""), ("▎", ""), ("▍", ""), ("▌", ""), ("▋", ""), ("▊", ""),
        ("▉", ""), ("^(−½)", "^(-1/2)"), ("’", "'"),
    ]

    static func transliterate(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { !$0.isASCII }) else { return text }
        var result = text
        for (unicode, ascii) in table where result.contains(unicode) {
            result = result.replacing(unicode, with: ascii)
        }
        return result
    }
}
