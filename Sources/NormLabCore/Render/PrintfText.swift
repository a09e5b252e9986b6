#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// NormLab links FoundationEssentials, not Foundation (start-up: full Foundation and ICU cost about 8 ms before the
// prompt), and FoundationEssentials has neither `String(format:)` nor `trimmingCharacters(in:)`. These are the
// few pieces NormLab used, on the C library and the standard library.

extension String {
    /// C's printf formatting (`%.4f`, `%g`, `%4ld`, `%02x`), as `String(format:)` did. NormLab never sets
    /// LC_NUMERIC, so the decimal point is always ".".
    package init(printf format: String, _ arguments: CVarArg...) {
        var capacity = 128
        while true {
            var buffer = [CChar](repeating: 0, count: capacity)
            let needed = withVaList(arguments) { vsnprintf(&buffer, capacity, format, $0) }
            guard needed >= capacity else {
                self = needed < 0 ? "" : String(decoding: buffer.prefix(Int(needed)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
                return
            }
            capacity = Int(needed) + 1
        }
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs (`newlines: true`: and line breaks).
    package func trimmed(newlines: Bool = false) -> String {
        func isBlank(_ c: Character) -> Bool { c == " " || c == "\t" || (newlines && c.isNewline) }
        guard let first = firstIndex(where: { !isBlank($0) }), let last = lastIndex(where: { !isBlank($0) }) else { return "" }
        return String(self[first...last])
    }
}
