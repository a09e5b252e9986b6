import Foundation
@testable import NormLabCore
import Testing

/// NormLabCore links FoundationEssentials, not Foundation: its own printf, trimming and path functions must do
/// what Foundation's (String(format:), trimmingCharacters, NSString's path methods) did, checked here against them.
@Suite struct PlainTextTests {
    @Test func printfMatchesFoundationsFormat() {
        let cases: [(String, [CVarArg])] = [
            ("%.4f", [3.14159265]), ("%.0f.", [2.5]), ("%.3e", [-1.0e-300]), ("%g", [1e22]), ("%g", [0.0001]),
            ("%4ld  ", [42]), ("\\x%02x", [UInt32(7)]), ("%.2f GiB", [1536.0 / 1024]), ("%.1f", [Double.infinity]),
            ("%.1f", [-Double.nan]), ("%.300f", [1.0 / 3]),
        ]
        for (format, arguments) in cases {
            let expected = String(format: format, arguments: arguments)
            let actual = String(printf: format, arguments[0])
            #expect(actual == expected, "\(format)")
        }
    }

    @Test func trimmingMatchesFoundation() {
        for text in ["", "  ", " a b ", "\t x\t", "\n x \n", "x", " \r\n y\r\n "] {
            #expect(text.trimmed() == text.trimmingCharacters(in: .whitespaces), "\(text.debugDescription)")
            #expect(text.trimmed(newlines: true) == text.trimmingCharacters(in: .whitespacesAndNewlines), "\(text.debugDescription)")
        }
        #expect(" \t a \t ".trimmed() == "a")
        #expect(" a\n".trimmed() == "a\n")
        #expect(" a\n".trimmed(newlines: true) == "a")
    }

    /// What NSString's path methods answer (written out: Foundation on Linux traps on some of these inputs).
    @Test func pathsAsNSStringReadThem() {
        let cases: [(path: String, parent: String, last: String, ext: String)] = [
            ("/a/b.npy", "/a", "b.npy", "npy"), ("/a/b/", "/a", "b", ""), ("a", "", "a", ""), ("/", "/", "/", ""),
            ("a/b", "a", "b", ""), ("dir/.hidden", "dir", ".hidden", ""), ("x.tar.gz", "", "x.tar.gz", "gz"),
            ("/a/b//", "/a", "b", ""), ("./x.NPY", ".", "x.NPY", "NPY"), ("/top", "/", "top", ""),
        ]
        for c in cases {
            #expect(PathText.parent(of: c.path) == c.parent, "parent of \(c.path)")
            #expect(PathText.lastComponent(c.path) == c.last, "last component of \(c.path)")
            #expect(PathText.fileExtension(c.path) == c.ext, "extension of \(c.path)")
        }
        for (directory, component, joined) in [("a", "b", "a/b"), ("/", "b", "/b"), ("a/", "b", "a/b"), ("", "b", "b"),
                                               ("/x/y", "normlab/history", "/x/y/normlab/history")] {
            #expect(PathText.appending(component, to: directory) == joined)
        }
        let home = ProcessInfo.processInfo.environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        #expect(PathText.home() == home)
        #expect(PathText.expandingTilde("~/x.npy") == home + "/x.npy")
        #expect(PathText.expandingTilde("~") == home)
        #expect(PathText.expandingTilde("~root/x") == ("~root/x" as NSString).expandingTildeInPath)
        #expect(PathText.expandingTilde("~no-such-user-here/x") == "~no-such-user-here/x")
        #expect(PathText.expandingTilde("a~/x") == "a~/x")
    }

    /// Full Foundation (and ICU) cost about 8 ms of start-up: the product's sources import it only as the
    /// fallback where FoundationEssentials does not exist (macOS), and NormKit not at all.
    @Test func productSourcesImportFoundationOnlyAsAFallback() throws {
        let sources = Repository.root.appendingPathComponent("Sources")
        let files = FileManager.default.enumerator(atPath: sources.path)!.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") }
        #expect(files.count > 30)
        for file in files {
            let lines = try String(contentsOf: sources.appendingPathComponent(file), encoding: .utf8).components(separatedBy: "\n")
            for (index, line) in lines.enumerated() where line.hasPrefix("import Foundation") && line != "import FoundationEssentials" {
                #expect(!file.hasPrefix("NormKit"), "\(file) imports Foundation")
                #expect(index >= 2 && lines[index - 1] == "#else" && lines[index - 2] == "import FoundationEssentials",
                        "\(file):\(index + 1) imports Foundation outside the canImport(FoundationEssentials) fallback")
            }
        }
    }
}
