import Foundation
import Testing
@testable import NormLabCore

/// Files and scripts as a hostile environment makes them: line ends, byte-order marks, modes, symbolic links,
/// half-finished multi-file writes, names that are not what they look like.
@Suite struct ReliabilityTests {
    @Test(arguments: ["\n", "\r\n", "\r"])
    func scriptsTakeAnyLineEnd(_ end: String) {
        let (i, sink) = makeInterpreter()
        let script = "\u{FEFF}tensor x = ones 2" + end + "tensor y = [1," + end + " 2]" + end + "show y" + end
        #expect(i.runScript(script, source: "s.nl"), "\(sink.error)")
        #expect(sink.standard.hasSuffix("y: (2) float64\n[1., 2.]\n"), "\(sink.standard)")
        #expect(sink.error.isEmpty)
    }

    /// Values near ±Double.greatestFiniteMagnitude: their range overflows to inf, which used to trap `hist`
    /// (Int(NaN)) — now binned in halves; every value counted, every edge finite.
    @Test func extremeValuesHistogram() throws {
        let (i, sink) = makeInterpreter()
        let (out, err) = run(i, sink, "tensor x = [1e308, -1e308, 0, 1.7e308, -1.7e308]", "hist x", "stats x", "tensor y = x", "hist x y")
        #expect(err.isEmpty, "\(err)")
        #expect(out.contains("x: 5 values in [-1.700e+308, 1.700e+308]") && !out.contains(" inf │"), "\(out)")
        let picture = Histogram.picture(title: "x", count: 5, value: { [1e308, -1e308, 0, 1.7e308, -1.7e308][$0] })
        #expect(picture.counts.reduce(0, +) == 5 && picture.edges.allSatisfy(\.isFinite))
    }

    @Test func saveKeepsModeAndWritesThroughALink() throws {
        let directory = try makeTemporaryDirectory("normlab-save")
        defer { try? FileManager.default.removeItem(at: directory) }
        let target = directory.appendingPathComponent("a.npy"), link = directory.appendingPathComponent("link.npy")
        let (i, sink) = makeInterpreter()
        i.workingDirectory = directory.path
        run(i, sink, "tensor x = ones 2", "save x a.npy")
        chmod(target.path, 0o600)
        try FileManager.default.createSymbolicLink(atPath: link.path, withDestinationPath: "a.npy")
        let (_, err) = run(i, sink, "tensor x = zeros 3", "save x link.npy")
        #expect(err.isEmpty, "\(err)")
        // The link is still a link, its target has the new data and its old mode.
        #expect((try FileManager.default.destinationOfSymbolicLink(atPath: link.path)) == "a.npy")
        let (_, loadErr) = run(i, sink, "load back a.npy", "load through link.npy")
        #expect(loadErr.isEmpty, "\(loadErr)")
        #expect(i.session["back"]?.shape.dims == [3] && i.session["through"]?.shape.dims == [3])
        var info = stat()
        stat(target.path, &info)
        #expect(info.st_mode & 0o777 == 0o600)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.contains(".tmp-") }
        #expect(leftovers.isEmpty)
    }

    @Test func exportIsAllOrNothing() throws {
        let directory = try makeTemporaryDirectory("normlab-export-atomic")
        defer { try? FileManager.default.removeItem(at: directory) }
        let (i, sink) = makeInterpreter()
        i.workingDirectory = directory.path
        run(i, sink, "tensor x = randn 2 4 3 seed 0", "layer groupnorm 2", "forward", "backward", "export numpy e.py")
        let before = try Data(contentsOf: directory.appendingPathComponent("e_x.npy"))
        // One of the targets becomes a directory: the export fails naming it, and changes nothing.
        let dx = directory.appendingPathComponent("e_dx.npy")
        try FileManager.default.removeItem(at: dx)
        try FileManager.default.createDirectory(at: dx, withIntermediateDirectories: false)
        let (_, err) = run(i, sink, "tensor x = randn 2 4 3 seed 9", "forward", "backward", "export numpy e.py")
        #expect(err.contains("cannot export to 'e.py': e_dx.npy: it exists and is not a regular file"), "\(err)")
        #expect(try Data(contentsOf: directory.appendingPathComponent("e_x.npy")) == before)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.contains(".tmp-") }
        #expect(leftovers.isEmpty, "\(leftovers)")
    }

    /// The stem goes into the script as a Python string literal: backslashes stay backslashes.
    @Test func generatedPythonEscapesTheStem() throws {
        #expect(PythonExport.pythonString(#"bs\"#) == #""bs\\""#)
        #expect(PythonExport.pythonString(#"t\x41"#) == #""t\\x41""#)
        #expect(PythonExport.pythonString("q\"\u{1B}é") == #""q\"\x1bé""#)
        let directory = try makeTemporaryDirectory("normlab-export-names")
        defer { try? FileManager.default.removeItem(at: directory) }
        let (i, sink) = makeInterpreter()
        i.workingDirectory = directory.path
        let (out, err) = run(i, sink, "tensor x = randn 2 4 3 seed 0", "layer groupnorm 2", "forward", "backward",
                             #"export numpy bs\.py"#, #"export numpy t\x41.py"#)
        #expect(err.isEmpty, "\(err)")
        #expect(out.contains(#"(t\x41_x.npy, …)"#))
        for script in [#"bs\.py"#, #"t\x41.py"#] {
            let text = try String(contentsOf: directory.appendingPathComponent(script), encoding: .utf8)
            #expect(text.contains("STEM = " + PythonExport.pythonString(String(script.dropLast(3)))))
        }
    }
}

/// Under `set unicode off` (automatic in a non-UTF-8 locale) NormLab spells its own symbols in ASCII, never the
/// user's words: a name or path is reported as typed.
@Suite struct UserWordsTests {
    @Test func userWordsAreNotTransliterated() throws {
        let directory = try makeTemporaryDirectory("normlab-words")
        defer { try? FileManager.default.removeItem(at: directory) }
        let (i, sink) = makeInterpreter()
        i.workingDirectory = directory.path
        let (_, err) = run(i, sink, "set unicode off", "tensor μx = randn 2")
        #expect(err.contains("'μx' is not a valid name") && err.contains("  tensor μx = randn 2\n         ^~"), "\(err)")
        #expect(err.contains("D... [seed S]"), "NormLab's own … is still spelled in ASCII: \(err)")
        let (out, _) = run(i, sink, "tensor x = ones 2", "save x σ.npy")
        #expect(out.contains("saved to σ.npy"), "\(out)")
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("σ.npy").path))
        #expect(!sink.transcript.contains("\u{E000}") && !sink.transcript.contains("\u{E001}"))
    }
}

/// File names that are not UTF-8 are kept byte for byte: loaded, saved and exported under the name typed, shown
/// escaped.
@Suite struct RawFileNameTests {
    @Test func bytesRoundTrip() {
        let bytes: [UInt8] = Array("café".utf8) + [0xE9, 0xFF, 0x80, 0x41] + Array("μ".utf8) + [0xCE]
        let text = RawBytes.decode(bytes)
        #expect(RawBytes.encode(text) == bytes)
        #expect(text.hasPrefix("café"))
        #expect(Escaping.removingMarks(Escaping.visible(text)) == "café\\xe9\\xff\\x80Aμ\\xce")
        #expect(RawBytes.decode(Array("plain ✓".utf8)) == "plain ✓")
    }

    @Test func nonUTF8NamesLoadAndSaveByteExact() throws {
        let directory = try makeTemporaryDirectory("normlab-raw")
        defer { try? FileManager.default.removeItem(at: directory) }
        let (i, sink) = makeInterpreter()
        i.workingDirectory = directory.path
        let script = RawBytes.decode(Array("tensor x = ones 3\nsave x caf".utf8) + [0xE9] + Array(".npy\nload y caf".utf8) + [0xE9] + Array(".npy\n".utf8))
        #expect(i.runScript(script, source: "s.nl"), "\(sink.error)")
        #expect(sink.standard.contains("saved to caf\\xe9.npy") && sink.standard.contains("loaded from caf\\xe9.npy"))
        // On disk the name is the bytes typed: c a f 0xE9 . n p y.
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        #expect(names.count == 1)
        let raw = Array("caf".utf8) + [0xE9] + Array(".npy".utf8)
        #expect(raw.withUnsafeBufferPointer { buffer in
            let path = Array(directory.path.utf8) + [UInt8(ascii: "/")] + Array(buffer) + [0]
            return path.withUnsafeBufferPointer { access(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), F_OK) } == 0
        })
        #expect(PythonExport.pythonString(RawBytes.decode([0x72, 0xE9])) == "\"r\\udce9\"")
    }
}
