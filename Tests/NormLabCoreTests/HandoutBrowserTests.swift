import Foundation
import Testing
@testable import NormLabCore

/// Debian's headless Chromium (package chromium-headless-shell; `.ci/run` installs it), or nil.
enum Browser {
    static let path: String? = {
        let folders = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init) + ["/usr/bin"]
        return folders.map { $0 + "/chromium-headless-shell" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    /// Run the browser on `page` with `arguments`; its standard output. Ended after 90 s.
    static func run(_ arguments: [String], page: URL) -> (status: Int32, output: String) {
        guard let path else { return (-1, "") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        process.arguments = ["--no-sandbox", "--disable-gpu", "--hide-scrollbars"] + arguments + [page.absoluteString]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return (-1, "") }
        let deadline = DispatchTime.now() + .seconds(90)
        DispatchQueue.global().asyncAfter(deadline: deadline) { if process.isRunning { process.terminate() } }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

@Suite(.serialized, .enabled(if: Browser.path != nil, "chromium-headless-shell is not installed (Debian: apt-get install chromium-headless-shell); the handouts were not opened in a browser"))
struct HandoutBrowserTests {
    /// A handout of tutorials 01 and 04 (formulas, axes, histograms), written to a temporary folder.
    func handout(in directory: URL) throws -> URL {
        let interpreter = Interpreter(sink: BufferSink(), workingDirectory: Repository.sessions.path)
        let file = directory.appendingPathComponent("handout.html")
        #expect(interpreter.execute("record \(file.path)"))
        #expect(interpreter.execute("run 01-first-groupnorm-by-hand.nl"))
        #expect(interpreter.execute("run 05-deriving-the-backward-pass.nl"))
        #expect(interpreter.execute("record stop"))
        return file
    }

    @Test func theBrowserKeepsEveryFormulaAndPicture() throws {
        let directory = try makeTemporaryDirectory("browser")
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = try handout(in: directory)
        let source = try String(contentsOf: file, encoding: .utf8)
        let (status, dom) = Browser.run(["--dump-dom"], page: file)
        #expect(status == 0)
        func count(_ needle: String, in text: String) -> Int { text.components(separatedBy: needle).count - 1 }
        // The parsed document has every <math> and <svg> the file has: none was dropped as malformed.
        #expect(count("<math", in: source) >= 15)
        #expect(count("<math", in: dom) == count("<math", in: source))
        #expect(count("<msqrt>", in: dom) == count("<msqrt>", in: source))
        #expect(count("<svg", in: dom) == count("<svg", in: source) && count("<svg", in: source) >= 3)
        #expect(count("<rect class=\"member\"", in: dom) == count("<rect class=\"member\"", in: source))
        // The engine's numbers are there as numbers in the formulas.
        #expect(dom.contains("<mn>9.2979</mn><mo>/</mo><mn>18</mn><mo>=</mo><mn>0.5166</mn>"))
        #expect(dom.contains("agrees with the engine"))
    }

    @Test func aScreenshotOfTheHandoutIsNotBlank() throws {
        let directory = try makeTemporaryDirectory("browser")
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = try handout(in: directory)
        let blank = directory.appendingPathComponent("blank.html")
        try "<!DOCTYPE html><html><body></body></html>".write(to: blank, atomically: true, encoding: .utf8)
        var sizes: [Int] = []
        for (page, picture) in [(file, "handout.png"), (blank, "blank.png")] {
            let png = directory.appendingPathComponent(picture)
            let (status, _) = Browser.run(["--screenshot=\(png.path)", "--window-size=1000,1400"], page: page)
            #expect(status == 0)
            let data = try Data(contentsOf: png)
            #expect(data.starts(with: [0x89, 0x50, 0x4E, 0x47]), "a PNG")
            sizes.append(data.count)
        }
        // A white page compresses to almost nothing; text, formulas and pictures do not.
        #expect(sizes[0] > 8 * sizes[1], "handout \(sizes[0]) bytes, blank page \(sizes[1]) bytes")
    }

    /// Printed (to PDF, as a browser's Print does): several pages, none of them empty.
    @Test func theHandoutPrints() throws {
        let directory = try makeTemporaryDirectory("browser")
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = try handout(in: directory)
        let pdf = directory.appendingPathComponent("handout.pdf")
        let (status, _) = Browser.run(["--print-to-pdf=\(pdf.path)", "--no-pdf-header-footer"], page: file)
        #expect(status == 0)
        let data = try Data(contentsOf: pdf)
        #expect(data.starts(with: Array("%PDF".utf8)))
        let text = String(decoding: data, as: UTF8.self)
        let pages = try NSRegularExpression(pattern: #"/Type\s*/Page[^s]"#).numberOfMatches(in: text, range: NSRange(text.startIndex..., in: text))
        #expect(pages >= 3, "\(pages) pages")
        #expect(data.count > 20_000 * pages / 2)
    }
}
