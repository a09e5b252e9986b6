import Foundation
import Testing
@testable import NormLabCore

/// Exercises graded against values the test computes itself from the problem it was given (the seeded problems'
/// numbers have two decimals, so the four printed are exact).
@Suite struct ExerciseTests {
    /// The numbers of the given line "  NAME = [a, b, …]".
    func given(_ name: String, in output: String) throws -> [Double] {
        let line = try #require(output.split(separator: "\n").first { $0.hasPrefix("  \(name) = [") })
        let inside = line.drop { $0 != "[" }.dropFirst().prefix { $0 != "]" }
        return inside.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces))! }
    }

    func list(_ values: [Double]) -> String { "[" + values.map { String($0) }.joined(separator: ", ") + "]" }

    @Test func aForwardExerciseAnsweredRightIsScoredFull() throws {
        let (interpreter, sink) = makeInterpreter()
        let (start, _) = run(interpreter, sink, "exercise forward seed=7")
        #expect(start.contains("you will compute, in order: 1. μ = Σx / m; 2. σ² = Σ(x − μ)² / m; 3. rstd = (σ² + eps)^(−½); 4. x̂ = (x − μ)·rstd; 5. y = γ·x̂ + β"))
        let x = try given("x", in: start), gamma = try given("γ", in: start), beta = try given("β", in: start)
        #expect(x.count == 6 && x.allSatisfy { ($0 * 100).rounded() == $0 * 100 })
        let m = Double(x.count)
        let mu = x.reduce(0, +) / m
        let variance = x.map { ($0 - mu) * ($0 - mu) }.reduce(0, +) / m
        let rstd = 1 / (variance + 1e-5).squareRoot()
        let xhat = x.map { ($0 - mu) * rstd }
        let y = (0..<x.count).map { gamma[$0] * xhat[$0] + beta[$0] }
        var transcript = ""
        for answer in ["\(mu)", "\(variance)", "\(rstd)", list(xhat), list(y)] {
            let (out, err) = run(interpreter, sink, "answer \(answer)")
            #expect(err.isEmpty)
            #expect(out.hasPrefix("[right]"), "\(answer): \(out)")
            transcript += out
        }
        #expect(transcript.contains("done. score: 5 of 5 steps right at the first answer, 0 after a hint, 0 shown"))
        #expect(interpreter.session.exercise == nil)
        #expect(run(interpreter, sink, "answer 1").1.contains("there is no exercise to answer"))
    }

    /// Each usual slip is named; no hint gives the value away.
    @Test func wrongAnswersGetHintsNotValues() throws {
        let (interpreter, sink) = makeInterpreter()
        let (start, _) = run(interpreter, sink, "exercise forward seed=11")
        let x = try given("x", in: start)
        let m = Double(x.count)
        let mu = x.reduce(0, +) / m
        let squares = x.map { ($0 - mu) * ($0 - mu) }.reduce(0, +)
        var hints: [String] = []
        func wrong(_ answer: String) -> String {
            let (out, _) = run(interpreter, sink, "answer \(answer)")
            #expect(out.hasPrefix("[not yet]"), "\(answer): \(out)")
            hints.append(out)
            return out
        }
        #expect(wrong("\(x.reduce(0, +))").contains("that is Σx: divide it by m = 6"))
        #expect(wrong("\(mu + 0.5)").contains("add its m = 6 values of x and divide by m"))
        run(interpreter, sink, "answer \(mu)")
        #expect(wrong("\(squares / (m - 1))").contains("divides by m − 1 (the unbiased variance)"))
        let variance = squares / m
        run(interpreter, sink, "answer \(variance)")
        let eps = 1e-5
        #expect(wrong("\((variance + eps).squareRoot())").contains("rstd is its reciprocal"))
        #expect(wrong("[1, 2]").contains("this step is one number; your answer has 2 values"))
        let rstd = 1 / (variance + eps).squareRoot()
        run(interpreter, sink, "answer \(rstd)")
        let xhat = x.map { ($0 - mu) * rstd }
        #expect(wrong(list(x.map { $0 * rstd })).contains("subtract μ before multiplying by rstd"))
        var almost = xhat
        almost[3] += 1
        #expect(wrong(list(almost)).contains("5 of 6 values are right; the first that is not is value 3"))
        #expect(wrong("[1, 2, 3]").contains("6 values; your answer has 3"))
        // The values themselves (at the precision shown) never appear in a hint.
        for value in [mu, variance, rstd] + xhat {
            let shown = String(format: "%.4f", value)
            #expect(!hints.contains { $0.contains(shown) }, "a hint shows \(shown)")
        }
        let stop = run(interpreter, sink, "exercise stop").0
        #expect(stop.contains("exercise stopped after 3 of 5 steps; score: 0 of 5 steps right at the first answer, 3 after a hint, 0 shown"))
    }

    @Test func aBackwardExerciseNamesTheMissingTerms() throws {
        let (interpreter, sink) = makeInterpreter()
        let (start, _) = run(interpreter, sink, "exercise backward seed=5")
        #expect(start.contains("4. dx = rstd·(∂x̂ − Σ∂x̂ / m − x̂·Σ(∂x̂·x̂) / m)"))
        let x = try given("x", in: start), dy = try given("dy", in: start), gamma = try given("γ", in: start)
        let m = Double(x.count)
        let mu = x.reduce(0, +) / m
        let rstd = 1 / (x.map { ($0 - mu) * ($0 - mu) }.reduce(0, +) / m + 1e-5).squareRoot()
        let xhat = x.map { ($0 - mu) * rstd }
        let dxhat = zip(dy, gamma).map { $0 * $1 }
        let sum = dxhat.reduce(0, +), projection = zip(dxhat, xhat).map { $0 * $1 }.reduce(0, +)
        #expect(run(interpreter, sink, "answer \(list(dxhat))").0.hasPrefix("[right]"))
        #expect(run(interpreter, sink, "answer \(sum)").0.hasPrefix("[right]"))
        #expect(run(interpreter, sink, "answer \(projection)").0.hasPrefix("[right]"))
        let noMean = (0..<x.count).map { rstd * (dxhat[$0] - xhat[$0] * projection / m) }
        #expect(run(interpreter, sink, "answer \(list(noMean))").0.contains("the −Σ∂x̂ / m term is missing"))
        let noProjection = (0..<x.count).map { rstd * (dxhat[$0] - sum / m) }
        #expect(run(interpreter, sink, "answer \(list(noProjection))").0.contains("the −x̂·Σ(∂x̂·x̂) term is missing"))
        // The learner's own tensor, any shape, as the answer.
        let dx = (0..<x.count).map { rstd * (dxhat[$0] - sum / m - xhat[$0] * projection / m) }
        let (out, _) = run(interpreter, sink, "tensor mine = \(list(dx))", "answer mine")
        #expect(out.contains("[right] dx = rstd·(∂x̂ − Σ∂x̂ / m − x̂·Σ(∂x̂·x̂) / m) = ["))
        #expect(out.contains("done. score: 3 of 4 steps right at the first answer, 1 after a hint, 0 shown"))
    }

    @Test func problemsAreReproducibleAndApartFromTheSession() throws {
        let (a, sinkA) = makeInterpreter(), (b, sinkB) = makeInterpreter()
        let first = run(a, sinkA, "exercise forward seed=42").0
        #expect(run(b, sinkB, "exercise forward seed=42").0 == first)
        #expect(run(b, sinkB, "exercise stop; exercise forward seed=43").0 != first)
        #expect(a.session.order.isEmpty && a.session.layer == nil, "no tensor or layer made")
        // On the session's own pass, with a selector; one exercise at a time; skip shows the value.
        let (interpreter, sink) = makeInterpreter()
        run(interpreter, sink, "tensor x = randn 2 4 3 seed 0; layer groupnorm 2; forward")
        let start = run(interpreter, sink, "exercise forward n=1 g=1").0
        #expect(start.contains("the set: sample n = 1, group g = 1 (channels 2–3); m = 6"))
        #expect(run(interpreter, sink, "exercise backward").1.contains("an exercise is running"))
        let explained = run(interpreter, sink, "explain forward n=1 g=1").0
        let mean = try #require(explained.split(separator: "\n").first { $0.contains("1. μ = Σx / m") }).split(separator: "=").last!
        #expect(run(interpreter, sink, "exercise skip").0.hasPrefix("shown: μ = Σx / m =\(mean)"))
        #expect(run(interpreter, sink, "exercise").0.hasPrefix("step 2 of 5: σ² = Σ(x − μ)² / m = ?"))
        #expect(run(interpreter, sink, "exercise backward").1.contains("an exercise is running"))
        #expect(run(interpreter, sink, "exercise stop").0.contains("1 shown"))
        #expect(run(interpreter, sink, "exercise backward").1.contains("needs a backward pass"))
        #expect(run(interpreter, sink, "layer layernorm shape=64; exercise forward seed=1").1.contains("normalises over 64 values"))
    }

    @Test func aWorksheetLeavesTheAnswersOut() throws {
        let directory = try makeTemporaryDirectory("worksheet")
        defer { try? FileManager.default.removeItem(at: directory) }
        let interpreter = Interpreter(sink: BufferSink(), workingDirectory: directory.path)
        #expect(interpreter.execute("record sheet.md answers=no; exercise forward seed=2; answer 0; exercise skip; exercise skip; record stop"))
        #expect(interpreter.execute("record key.md; exercise stop; exercise forward seed=2; answer 0; exercise skip; record stop"))
        let sheet = try String(contentsOf: directory.appendingPathComponent("sheet.md"), encoding: .utf8)
        let key = try String(contentsOf: directory.appendingPathComponent("key.md"), encoding: .utf8)
        #expect(sheet.contains("you will compute, in order:") && key.contains("you will compute, in order:"))
        #expect(!sheet.contains("normlab> answer") && !sheet.contains("shown:") && !sheet.contains("[not yet]"))
        #expect(key.contains("normlab> answer 0") && key.contains("shown: μ = Σx / m ="))
    }
}
