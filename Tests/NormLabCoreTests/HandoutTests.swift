import Foundation
import Testing
@testable import NormLabCore

@Suite struct MathNotationTests {
    @Test func proseIsSplitOffTheMath() {
        #expect(MathNotation.split("[0.1, 0.2, …, 0.9]  (18 values)") == ("[0.1, 0.2, …, 0.9]", "(18 values)"))
        #expect(MathNotation.split("y = γ·x̂ + β, with one γ and β per channel:") == ("y = γ·x̂ + β,", "with one γ and β per channel:"))
        #expect(MathNotation.split("dx = ∂x̂·rstd   (eval mode: μ and σ² are constants)") == ("dx = ∂x̂·rstd", "(eval mode: μ and σ² are constants)"))
        #expect(MathNotation.split("15.6484 / 18 = 0.8694   (biased: ÷ m)") == ("15.6484 / 18 = 0.8694", "(biased: ÷ m)"))
        #expect(MathNotation.split("rstd = (σ² + eps)^(−½)") == ("rstd = (σ² + eps)^(−½)", ""))
        #expect(MathNotation.split("the set: sample n = 0") == ("", "the set: sample n = 0"))
    }

    @Test func mathMLKeepsTheStructure() {
        let rstd = MathNotation.mathML("rstd = (σ² + eps)^(−½)")
        #expect(rstd.hasPrefix("<math><mrow><mi>rstd</mi><mo>=</mo>"))
        #expect(rstd.contains("<msup><mi>σ</mi><mrow><mn>2</mn></mrow></msup>"))
        #expect(rstd.contains("<mrow><mo>−</mo><mn>½</mn></mrow></msup>"))
        #expect(MathNotation.mathML("x̂").contains("<mover accent=\"true\"><mi>x</mi><mo>^</mo></mover>"))
        // A sign right after '=' or ',' belongs to the number; between two terms it is an operator.
        #expect(MathNotation.mathML("a = -0.5, -1 − 2").contains("<mn>−0.5</mn><mo>,</mo><mn>−1</mn><mo>−</mo><mn>2</mn>"))
        #expect(MathNotation.mathML("eps = 1e-05").contains("<msup><mn>10</mn><mn>−5</mn></msup>"))
        #expect(MathNotation.mathML("√(σ² + eps)").contains("<msqrt>"))
        #expect(MathNotation.mathML("a < b & c").contains("<mo>&lt;</mo>"))
    }

    @Test func latexSpellsTheSymbols() {
        #expect(MathNotation.latex("σ² + eps = 0.86936 + 1e-05 = 0.86937")
                == "{\\sigma}^{2} + \\mathrm{eps} = 0.86936 + 10^{-5} = 0.86937")
        #expect(MathNotation.latex("x̂ = (x − μ)·rstd") == "\\hat{x} = (x - \\mu) \\cdot \\mathrm{rstd}")
        #expect(MathNotation.latex("∂μ = −Σ∂(x − μ)") == "\\partial \\mu = - \\sum \\partial (x - \\mu)")
        #expect(MathNotation.latex("running_mean") == "\\mathrm{running\\_mean}")
    }
}

@Suite(.serialized) struct HandoutTests {
    /// Run `lines` (one chunk each) in a fresh interpreter whose working directory is a temporary folder.
    func session(_ body: (Interpreter, BufferSink, URL) throws -> Void) throws {
        let directory = try makeTemporaryDirectory("handout")
        defer { try? FileManager.default.removeItem(at: directory) }
        let sink = BufferSink()
        let interpreter = Interpreter(sink: sink, workingDirectory: directory.path)
        try body(interpreter, sink, directory)
    }

    func sessionScript(_ name: String) -> String { Repository.sessions.appendingPathComponent(name).path }

    @Test func htmlHandoutHoldsTheCommandsFormulasAndPictures() throws {
        try session { interpreter, sink, directory in
            #expect(interpreter.execute("record lesson.html"))
            #expect(interpreter.execute("run \(sessionScript("01-first-groupnorm-by-hand.nl"))"))
            let file = directory.appendingPathComponent("lesson.html")
            #expect(!FileManager.default.fileExists(atPath: file.path), "written only when recording stops")
            #expect(interpreter.execute("record stop"))
            #expect(sink.standard.contains("handout written to lesson.html"))
            let html = try String(contentsOf: file, encoding: .utf8)
            // Self-contained: no script, no fetched resource.
            #expect(!html.contains("<script"))
            #expect(!html.contains("<link"))
            #expect(!html.replacingOccurrences(of: "http://www.w3.org/2000/svg", with: "").contains("http"))
            // Every command, with its comment as prose.
            #expect(html.contains("<span class=\"prompt\">normlab&gt;</span> explain forward</pre>"))
            #expect(html.contains("A picture of which elements shared those statistics:"))
            #expect(!html.contains("record stop"), "the record statements are not part of the handout")
            // explain's eight steps as MathML, with the engine's numbers as the terminal printed them.
            #expect(html.components(separatedBy: "<div class=\"step\">").count - 1 == 8)
            #expect(html.components(separatedBy: "<math").count == html.components(separatedBy: "</math>").count)
            #expect(html.contains("<mn>9.2979</mn><mo>/</mo><mn>18</mn><mo>=</mo><mn>0.5166</mn>"))
            #expect(sink.standard.contains("μ = Σx / m = 9.2979 / 18 = 0.5166"))
            // show axes and hist x y as SVG: 18 marked cells; two histograms on one scale.
            #expect(html.components(separatedBy: "class=\"member\"").count - 1 == 18)
            // Every set has its colour: the 2 × 2 (sample, group) sets of (2, 4, 9) with G = 2, 18 cells each.
            let sets = html.components(separatedBy: "data-set=\"").dropFirst().map { $0.prefix { $0 != "\"" } }
            #expect(sets.count == 72 && Set(sets) == ["0", "1", "2", "3"])
            #expect(Set(html.components(separatedBy: "class=\"member\" data-set=\"").dropFirst().map { $0.prefix { $0 != "\"" } }) == ["0"])
            #expect(html.components(separatedBy: "aria-label=\"histogram of").count - 1 == 2)
            #expect(html.contains("<text x=\"36\" y=\"32\" font-family=\"system-ui, sans-serif\" font-size=\"12\" text-anchor=\"end\" fill=\"#1d2330\">16</text>"))
        }
    }

    @Test func markdownHandoutHasBalancedFencesAndMath() throws {
        try session { interpreter, _, directory in
            #expect(interpreter.execute("record notes.md"))
            for script in ["01-first-groupnorm-by-hand.nl", "05-deriving-the-backward-pass.nl", "13-layernorm-and-rmsnorm-in-a-transformer.nl"] {
                #expect(interpreter.execute("run \(sessionScript(script))"))
            }
            #expect(interpreter.execute("record stop"))
            let markdown = try String(contentsOf: directory.appendingPathComponent("notes.md"), encoding: .utf8)
            let lines = markdown.split(separator: "\n", omittingEmptySubsequences: false)
            var inFence = false, fences = 0
            for line in lines {
                if line.hasPrefix("```") { inFence.toggle(); fences += 1; continue }
                guard !inFence else { continue }
                // Outside code, math delimiters pair up on each line (escaped \$ is a dollar sign).
                let dollars = line.replacingOccurrences(of: "\\$", with: "").filter { $0 == "$" }.count
                #expect(dollars % 2 == 0, "unbalanced $ in: \(line)")
                for span in line.replacingOccurrences(of: "\\$", with: "").split(separator: "$", omittingEmptySubsequences: false).enumerated() where span.offset % 2 == 1 {
                    #expect(span.element.filter { $0 == "{" }.count == span.element.filter { $0 == "}" }.count, "braces in: \(span.element)")
                }
            }
            #expect(!inFence && fences > 20)
            #expect(markdown.contains("1. $\\mu = \\sum x / m = 9.2979 / 18 = 0.5166$"))
            // The text after a numbered list is separated from it, not swallowed by its last item.
            #expect(markdown.contains("\n\ncheck: mean"))
        }
    }

    @Test func everyTutorialRecordsWithoutUnreadFormulas() throws {
        let scripts = try FileManager.default.contentsOfDirectory(atPath: Repository.sessions.path).filter { $0.hasSuffix(".nl") }.sorted()
        #expect(scripts.count >= 13)
        for script in scripts {
            try session { interpreter, _, directory in
                interpreter.workingDirectory = Repository.sessions.path
                #expect(interpreter.execute("record \(directory.appendingPathComponent("h.html").path)"))
                interpreter.execute("run \(script)")
                #expect(interpreter.execute("record stop"))
                let html = try String(contentsOf: directory.appendingPathComponent("h.html"), encoding: .utf8)
                #expect(html.components(separatedBy: "<math").count == html.components(separatedBy: "</math>").count, "\(script)")
                #expect(html.components(separatedBy: "<svg").count == html.components(separatedBy: "</svg>").count, "\(script)")
                #expect(html.hasSuffix("</html>\n"), "\(script)")
            }
        }
    }

    @Test func recordingRulesAndMessages() throws {
        try session { interpreter, sink, directory in
            #expect(run(interpreter, sink, "record").0.contains("not recording"))
            #expect(run(interpreter, sink, "record stop").1.contains("nothing is being recorded"))
            #expect(run(interpreter, sink, "record notes.txt").1.contains("ending in .html or .md"))
            #expect(run(interpreter, sink, "record nowhere/notes.md").1.contains("does not exist"))
            // Several statements in one chunk, recording started by the first of them.
            #expect(interpreter.execute("record a.md; tensor x = randn 2 3 seed 0; show x"))
            let status = run(interpreter, sink, "record").0
            #expect(status.contains("recording to a.md (Markdown): 2 commands so far"))
            let second = run(interpreter, sink, "record b.html").1
            #expect(second.contains("already recording to 'a.md'"))
            #expect(interpreter.execute("record stop"))
            let markdown = try String(contentsOf: directory.appendingPathComponent("a.md"), encoding: .utf8)
            #expect(markdown.contains("normlab> tensor x = randn 2 3 seed 0\nx: (2, 3) float64"))
            #expect(markdown.contains("normlab> show x\nx: (2, 3) float64"))
            #expect(!markdown.contains("normlab> record") && !markdown.contains("recording to"),
                    "neither `record` nor its output is recorded")
            #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("b.html").path))
        }
    }

    /// Nothing is lost: a failed `record stop` keeps recording; at the end of a session the handout is written,
    /// or, when its folder is gone, written to the temporary folder with a warning saying where.
    @Test func aHandoutIsNeverLost() throws {
        try session { interpreter, sink, directory in
            let folder = directory.appendingPathComponent("out")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            #expect(interpreter.execute("record out/h.html; tensor x = randn 4 seed 1"))
            try FileManager.default.removeItem(at: folder)
            let failed = run(interpreter, sink, "record stop").1
            #expect(failed.contains("cannot write the handout") && failed.contains("still recording"))
            #expect(interpreter.handout != nil)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            #expect(interpreter.execute("record stop"))
            #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent("h.html").path))

            #expect(interpreter.execute("record out/end.md; show x"))
            interpreter.finishRecording()
            #expect(sink.error.contains("note: handout written to out/end.md (1 commands)"))
            #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent("end.md").path))

            #expect(interpreter.execute("record out/lost.md; show x"))
            try FileManager.default.removeItem(at: folder)
            interpreter.finishRecording()
            let warning = sink.error.components(separatedBy: "\n").last { $0.contains("was written to") } ?? ""
            #expect(warning.contains("cannot write the handout to lost.md"))
            let fallback = warning.components(separatedBy: "was written to ").last?.components(separatedBy: " instead").first ?? ""
            #expect(FileManager.default.fileExists(atPath: fallback), "\(warning)")
            try? FileManager.default.removeItem(atPath: fallback)
            #expect(interpreter.handout == nil)
        }
    }

    /// Tab completion of the classroom and checking commands, from their declarations.
    @Test func theNewCommandsComplete() {
        func candidates(_ line: String) -> [String] { Completion.complete(line, tensorNames: ["x", "mine"]).candidates }
        #expect(candidates("rec") == ["record"])
        #expect(candidates("record ") == ["stop"] && Completion.complete("record ", tensorNames: []).wantsPaths)
        #expect(candidates("record h.html a") == ["answers="])
        #expect(candidates("record h.html answers=") == ["yes", "no"])
        #expect(candidates("exercise ") == ["forward", "backward", "skip", "stop"])
        #expect(candidates("exercise forward s") == ["seed="])
        #expect(candidates("answer m") == ["mine"])
        #expect(candidates("check ") == [] && Completion.complete("check ", tensorNames: []).wantsPaths)
        #expect(candidates("check f.py dt") == ["dtype="])
        #expect(candidates("check f.py dtype=f") == ["float32", "float64"])
        #expect(candidates("hist x r") == ["row"])
    }

    @Test func histogramsSideBySideShareBinsAndScale() throws {
        let (interpreter, sink) = makeInterpreter()
        let (out, _) = run(interpreter, sink, "tensor a = [0, 1, 2, 3]; tensor b = [10, 10, 10, 11]; hist a b")
        let all = out.split(separator: "\n").map(String.init)
        let header = try #require(all.firstIndex { $0.hasPrefix("a: 4 values in [0.000, 3.000]") })
        #expect(all[header].hasSuffix("b: 4 values in [10.000, 11.000]"), "each panel's title has its own range")
        let lines = Array(all[header...])
        // Shared bins: both panels' first edge is the smallest of all values, 0.
        #expect(lines[1].hasPrefix("   0.000 │") && lines[1].contains("       0.000 │"))
        // One scale: b's bin of three 10s is the full width; a's bins of one value are a third of it.
        let fullBar = String(repeating: "█", count: 24)
        #expect(lines.contains { $0.contains(fullBar + " 3") })
        #expect(!lines.contains { $0.contains(fullBar + " 1") })
    }
}
