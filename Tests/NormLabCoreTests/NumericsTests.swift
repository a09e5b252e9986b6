import Foundation
import NormKit
import Testing
@testable import NormLabCore

/// The numerics lab through the command language: float16/bfloat16 tensors, method= and accumulate=, the warnings
/// that name where low precision broke, and explain's computed-against-exact steps.
@Suite struct NumericsTests {
    @Test func reducedTensorsHoldTheirFormatsValues() {
        let (i, sink) = makeInterpreter()
        let (out, err) = run(i, sink, "set dtype float16", "tensor x = randn 3 50 seed 2 scale 1000", "set dtype bfloat16",
                             "tensor b = randn 3 50 seed 2", "tensor r = arange 1 4 scale 0.1 shift 100", "tensors")
        #expect(err.isEmpty, "\(err)")
        #expect(out.contains("x     (3, 50)  float16") && out.contains("b     (3, 50)  bfloat16"), "\(out)")
        for value in i.session["x"]!.doubles { #expect(DType.float16.represents(value)) }
        for value in i.session["b"]!.doubles { #expect(DType.bfloat16.represents(value)) }
        // 100.1 is 100.0 in bfloat16 (spacing 0.5 near 100): one rounding from the float64 value.
        #expect(i.session["r"]!.doubles == [100, 100, 100.0, 100.5])
        let (_, big) = run(i, sink, "set dtype float16", "tensor big = full 70000 2")
        #expect(big.contains("2 values went past float16's largest finite value 65504 and became ±∞"), "\(big)")
    }

    /// compare says what a float16 or bfloat16 side's last bits allow, beside NumPy's allclose.
    @Test func compareKnowsTheNarrowFormat() {
        let (i, sink) = makeInterpreter()
        let (out, _) = run(i, sink, "tensor x64 = randn 2 8 seed 1", "set dtype float16", "tensor x = randn 2 8 seed 1",
                           "compare x x64", "tensor far = randn 2 8 seed 2", "compare far x64")
        #expect(out.contains("within float16's rounding (|a − b| ≤ 2u·max(|a|, |b|), u = 2^−11): yes"), "\(out)")
        #expect(out.contains("within float16's rounding (|a − b| ≤ 2u·max(|a|, |b|), u = 2^−11): no — 16 of 16 elements differ by more"), "\(out)")
        let (plain, _) = run(i, sink, "set dtype float32", "tensor a = ones 2", "tensor b = ones 2", "compare a b")
        #expect(!plain.contains("rounding ("), "\(plain)")
    }

    @Test func layerShowsAndValidatesTheArithmetic() {
        let (i, sink) = makeInterpreter()
        let (out, _) = run(i, sink, "layer groupnorm 2 method=welford accumulate=storage")
        #expect(out.contains("changed: method, accumulate"), "\(out)")
        #expect(out.contains("arithmetic       method=welford accumulate=storage: σ² by Welford's running update, every sum and step in the tensors' own format"), "\(out)")
        let (_, bad) = run(i, sink, "layer groupnorm 2 method=threepass")
        #expect(bad.contains("method must be twopass or onepass or welford, got 'threepass'"), "\(bad)")
        let (_, badAccumulate) = run(i, sink, "layer layernorm accumulate=float8")
        #expect(badAccumulate.contains("accumulate must be float64 or float32 or storage"), "\(badAccumulate)")
        #expect(Completion.complete("layer groupnorm 2 method=", tensorNames: []).candidates == ["twopass", "onepass", "welford"])
        #expect(Completion.complete("layer layernorm accumulate=s", tensorNames: []).candidates == ["storage"])
    }

    /// Each breakage is named once, with the setting that avoids it; the fix makes the warning go away.
    @Test func breakagesAreWarnedAndFixesSilenceThem() {
        let (i, sink) = makeInterpreter()
        let (_, overflow) = run(i, sink, "set dtype float16", "tensor x = randn 2 8 4 4 seed 0 scale 300",
                                "layer groupnorm 2 accumulate=storage", "forward")
        #expect(overflow.contains("overflow: x² went past float16's largest finite value 65504 in 4 statistics sets") && overflow.contains("accumulate=float32 avoids it"), "\(overflow)")
        let (_, fixed) = run(i, sink, "layer groupnorm 2 accumulate=float32", "forward")
        #expect(fixed.isEmpty, "\(fixed)")

        let (yOut, eps) = run(i, sink, "tensor x = full 3 2 8", "layer layernorm shape=8 eps=1e-12 accumulate=storage", "forward")
        #expect(eps.contains("eps = 1e-12 is 0 in float16") && eps.contains("16 of 16 values of y are NaN or ±∞ although the input is finite"), "\(eps)")
        #expect(yOut.contains("(16 NaN)"), "\(yOut)")
        let (_, dxWarning) = run(i, sink, "backward")
        #expect(dxWarning.contains("values of dx are NaN or ±∞ although the input is finite"), "\(dxWarning)")

        let (_, cancel) = run(i, sink, "set dtype bfloat16", "tensor x = randn 16 4 seed 0 scale 0.1 shift 5",
                              "layer batchnorm method=onepass accumulate=storage", "forward")
        #expect(cancel.contains("cancellation: σ² came out ≤ 0 in 4 statistics sets") && cancel.contains("method=twopass or method=welford avoids it"), "\(cancel)")
        let (_, stored) = run(i, sink, "set dtype float16", "tensor x = randn 2 8 seed 1", "layer layernorm shape=8",
                              "param gamma = full 60000 8", "forward")
        #expect(stored.contains("values of y went past float16's largest finite value 65504 and became ±∞ when stored"), "\(stored)")
    }

    @Test func explainShowsTheDigitWhereItGoesWrong() {
        let (i, sink) = makeInterpreter()
        let (out, _) = run(i, sink, "set dtype float32", "tensor x = arange 1 16 scale 1e-3 shift 100",
                           "layer layernorm shape=16 method=onepass accumulate=float32", "forward", "explain forward")
        #expect(out.contains("as computed — method=onepass, every step rounded to float32 — against the exact values"), "\(out)")
        #expect(out.contains("μ = Σx / m = 100.007492, exactly 100.0075002   (7 digits agree)"), "\(out)")
        #expect(out.contains("σ² = E[x²] − μ² = 0.001953125, exactly 2.125669903e-05   (no digit agrees)"), "\(out)")
        // The same set computed exactly has no such section.
        let (exact, _) = run(i, sink, "layer layernorm shape=16", "forward", "explain forward")
        #expect(!exact.contains("as computed"), "\(exact)")
    }

    /// A float16 layer's gradient check is the float16 gradient's, and export refuses a pass its script cannot match.
    @Test func gradcheckAndExportKnowTheFormat() throws {
        let (i, sink) = makeInterpreter()
        let (out, _) = run(i, sink, "set dtype float16", "tensor x = randn 2 4 3 seed 0", "layer groupnorm 2", "forward", "backward",
                           "gradcheck dx")
        #expect(out.contains("dx (the engine's float16 backward): PASS"), "\(out)")
        #expect(out.contains("float16: atol raised to"), "\(out)")
        let directory = try makeTemporaryDirectory("normlab-numerics")
        defer { try? FileManager.default.removeItem(at: directory) }
        i.workingDirectory = directory.path
        let (_, refused) = run(i, sink, "layer groupnorm 2 method=onepass", "forward", "backward", "export numpy e.py")
        #expect(refused.contains("export's script recomputes the exact pass"), "\(refused)")
    }
}
