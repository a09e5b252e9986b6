import Foundation
import Testing

/// Every public declaration of NormKit says what it is (`description` conformances excepted: the protocol says).
@Suite struct DocumentationTests {
    @Test func everyPublicDeclarationHasADocComment() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let folder = root.appendingPathComponent("Sources/NormKit")
        let files = FileManager.default.enumerator(atPath: folder.path)?.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") } ?? []
        #expect(files.count > 10)
        var undocumented: [String] = []
        for file in files {
            let lines = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8).components(separatedBy: "\n")
            for (i, line) in lines.enumerated() {
                let text = line.trimmingCharacters(in: .whitespaces)
                let stripped = text.replacingOccurrences(of: #"^(@\w+(\([^)]*\))?\s+)*"#, with: "", options: .regularExpression)
                guard stripped.hasPrefix("public "), !stripped.contains("var description") else { continue }
                var j = i - 1
                while j >= 0, lines[j].trimmingCharacters(in: .whitespaces).hasPrefix("@") { j -= 1 }
                if j < 0 || !lines[j].trimmingCharacters(in: .whitespaces).hasPrefix("///") {
                    undocumented.append("\(file):\(i + 1): \(text)")
                }
            }
        }
        #expect(undocumented.isEmpty, "undocumented:\n\(undocumented.joined(separator: "\n"))")
    }
}
