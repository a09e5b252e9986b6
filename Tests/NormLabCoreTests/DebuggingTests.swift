import Foundation
import Testing
@testable import NormLabCore

/// compare's diagnosis hints, each triggered by the mistake it names, and the Python exports run for real.
@Suite struct HintTests {
    func hints(_ lines: String...) -> [String] { hints(lines) }

    func hints(_ lines: [String]) -> [String] {
        let (i, sink) = makeInterpreter()
        var out = ""
        for line in lines { out += run(i, sink, line).0 }
        return out.split(separator: "\n").filter { $0.contains("hint:") }.map(String.init)
    }

    @Test func batchReduction() {
        let found = hints("tensor x = randn 3 4 2 seed 0", "layer groupnorm 2", "forward", "backward",
                          "tensor summed = dgamma", "layer groupnorm 2 paramgrad=mean", "forward", "backward",
                          "compare dgamma summed")
        #expect(found == ["  hint: [param-grad-sum] summed is summed over the batch where the layer averages it (paramgrad=mean: ÷ N = 3) (diagnose dgamma=summed says more)"], "\(found)")
        // Two tensors that are not the layer's: only the factor is said.
        let plain = hints("tensor x = randn 3 4 2 seed 0", "layer groupnorm 2", "forward",
                          "tensor a = [3, -6, 1.5]", "tensor b = [1, -2, 0.5]", "compare a b")
        #expect(plain == ["  hint: a ≈ N·b with N = 3, the batch: a sum against a mean over the batch"], "\(plain)")
    }

    @Test func missingMeanTerm() {
        let found = hints("load x sessions/data/my_x.npy", "load dy sessions/data/my_dy.npy", "load mine sessions/data/my_dx.npy",
                          "layer groupnorm 2", "forward", "backward dy", "compare mine dx")
        #expect(found == ["  hint: [missing-mean-term] mine lacks −rstd·mean(∂x̂), the term that comes through μ: it does not sum to 0 over each set (diagnose dx=mine says more)"], "\(found)")
    }

    @Test func biasedAgainstUnbiased() {
        let found = hints("tensor x = randn 2 4 3 seed 1", "layer groupnorm 2 variance=unbiased", "forward",
                          "tensor y_unbiased = y", "layer groupnorm 2", "forward", "compare y_unbiased y")
        #expect(found == ["  hint: [unbiased-variance] σ² divides by m − 1 (ddof=1, torch.var's default) where the layer divides by m (diagnose y=y_unbiased says more)"], "\(found)")
    }

    @Test func signFlip() {
        let found = hints("tensor a = [1, -2, 3]", "tensor b = [-1, 2, -3]", "compare a b")
        #expect(found == ["  hint: a ≈ −b: a sign flip (the gradient of −L, or dy negated)"])
    }

    @Test func otherConvention() {
        let found = hints("tensor x = randn 2 4 3 seed 2", "layer groupnorm 2 preset=pydllib", "forward", "tensor theirs = y",
                          "layer groupnorm 2", "forward", "backward", "compare theirs y")
        #expect(found == ["  hint: [other-preset] theirs is what the layer gives under preset=pydllib: a convention mismatch, not an arithmetic slip (help conventions) (diagnose y=theirs says more)"], "\(found)")
        let reduceOnly = hints("tensor x = randn 2 4 3 seed 2", "layer groupnorm 2 reduce=channels", "forward", "tensor theirs = y",
                               "layer groupnorm 2", "forward", "backward", "compare theirs y")
        #expect(reduceOnly == ["  hint: [per-position-statistics] μ and σ² were taken per position over the group's channels only (PyDLLib's .sum(2)), not over channels × positions (diagnose y=theirs says more)"], "\(reduceOnly)")
    }

    /// A float16 y made from x rounded to float16, judged against a layer that saw the unrounded x: x's own
    /// rounding is not a low-precision bug, so none is named and the user is told which x to load; with the x the
    /// float16 pass saw, the same y matches.
    @Test func aFloat16ResultFromAnotherInputIsNotAccused() {
        let setup = ["set dtype float16", "tensor x = randn 4 6 5 5 seed 3", "layer groupnorm 3", "forward", "tensor y16 = y",
                     "set dtype float64"]
        let wrongInput = hints(setup + ["tensor x = randn 4 6 5 5 seed 3", "forward", "compare y16 y"])
        #expect(wrongInput.count == 1 && wrongInput[0].contains("the layer's input x is not float16 (600 of 600 elements change")
                && !wrongInput[0].contains("[low-precision"), "\(wrongInput)")
        let (i, sink) = makeInterpreter()
        for line in setup + ["tensor x64 = x", "forward x64"] { run(i, sink, line) }
        let (report, _) = run(i, sink, "diagnose y=y16")
        #expect(report.contains("y (y16)  [match]") && !report.contains("note:"), "\(report)")
    }

    @Test func equalTensorsGetNoHints() {
        #expect(hints("tensor a = [1, 2]", "tensor b = a", "compare a b").isEmpty)
        let (i, sink) = makeInterpreter()
        let (_, err) = run(i, sink, "tensor a = ones 2 3", "tensor b = ones 3 2", "compare a b")
        #expect(err.contains("a has shape (2, 3) and b has shape (3, 2): compare needs equal shapes (it does not broadcast)"))
    }
}

@Suite struct ExportTests {
    static let setups = [
        "tensor x = randn 3 4 2 3 seed 1; layer groupnorm 2; param gamma = randn 4 seed 2",
        "tensor x = randn 3 4 2 3 seed 1; layer groupnorm 2 preset=pydllib; param beta = randn 4 2 3 seed 3",
        "tensor x = randn 4 3 2 seed 4; layer batchnorm; forward; eval",
        "tensor x = randn 4 3 2 seed 5; layer batchnorm preset=pydllib",
        "tensor x = randn 2 4 3 seed 6; layer rmsnorm 2",
        "tensor x = randn 2 6 seed 7; layer layernorm affine=none variance=unbiased",
        "set dtype float32; tensor x = randn 2 4 3 seed 8; layer instancenorm",
        "tensor x = randn 2 3 4 seed 9; layer layernorm shape=3,4; param beta = randn 3 4 seed 3",
        "tensor x = randn 2 3 8 seed 10; layer rmsnorm shape=8; param gamma = randn 8 seed 2",
        "tensor x = randn 5 6 seed 11; layer layernorm shape=6 paramgrad=mean",
        // BatchNorm with grouped channels: no PyTorch layer, so both scripts reduce over (N, K[, S]) themselves.
        "tensor x = randn 3 6 2 2 seed 12; layer norm over=n,c,s groups=3; param gamma = randn 6 seed 2; forward; eval",
        "tensor x = randn 3 4 5 seed 13; layer norm over=n,c groups=2 affine=c,s; param beta = randn 4 5 seed 3",
    ]

    func python(_ arguments: [String]) -> (Int32, String) {
        runProcess("/usr/bin/env", ["python3"] + arguments)
    }

    func exported(_ setup: String) throws -> (URL, String) {
        let directory = try makeTemporaryDirectory("normlab-export")
        let (i, sink) = makeInterpreter()
        let (out, err) = run(i, sink, setup, "forward", "backward",
                             "export numpy \(directory.path)/check.py", "export torch \(directory.path)/check_torch.py")
        #expect(err.isEmpty, "\(err)")
        return (directory, out)
    }

    /// The NumPy export, run by python3, agrees with NormLab within twice the rounding estimate for the problem.
    @Test(arguments: setups)
    func numpyExportAgrees(_ setup: String) throws {
        let (directory, out) = try exported(setup)
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(out.contains("wrote \(directory.path)/check.py"))
        let (status, output) = python([directory.appendingPathComponent("check.py").path])
        #expect(status == 0, "\(output)")
        #expect(output.contains("dx: max |difference|"), "\(output)")
        #expect(!output.contains("DIFFERS"))
    }

    /// The check can fail: a NormLab result changed on disk makes the script exit 1.
    @Test func numpyExportCatchesADifference() throws {
        let (directory, _) = try exported(Self.setups[0])
        defer { try? FileManager.default.removeItem(at: directory) }
        let dx = directory.appendingPathComponent("check_dx.npy")
        var data = try Data(contentsOf: dx)
        data[data.count - 3] ^= 0x40  // flip a bit of the last value
        try data.write(to: dx)
        let (status, output) = python([directory.appendingPathComponent("check.py").path])
        #expect(status == 1, "\(output)")
        #expect(output.contains("dx: max |difference|") && output.contains("DIFFERS"))
    }

    /// `export … against`: the script checks the user's tensors, and fails on a wrong one.
    @Test func exportAgainstYourTensors() throws {
        let directory = try makeTemporaryDirectory("normlab-export-against")
        defer { try? FileManager.default.removeItem(at: directory) }
        let (i, sink) = makeInterpreter()
        let (out, err) = run(i, sink, "load x sessions/data/my_x.npy", "load dy sessions/data/my_dy.npy",
                             "load my_dx sessions/data/my_dx.npy", "load fixed sessions/data/my_dx_fixed.npy",
                             "layer groupnorm 2", "forward", "backward dy",
                             "export numpy \(directory.path)/wrong.py against dx=my_dx",
                             "export numpy \(directory.path)/right.py against dx=fixed")
        #expect(err.isEmpty, "\(err)")
        #expect(out.contains("agrees with your tensors"))
        let (bad, badOutput) = python([directory.appendingPathComponent("wrong.py").path])
        #expect(bad == 1 && badOutput.contains("dx: max |difference|") && badOutput.contains("DIFFERS"), "\(badOutput)")
        let (good, goodOutput) = python([directory.appendingPathComponent("right.py").path])
        #expect(good == 0 && !goodOutput.contains("y:"), "\(goodOutput)")
        let script = try String(contentsOf: directory.appendingPathComponent("right.py"), encoding: .utf8)
        #expect(script.contains("so are your (dx = fixed) y, dx"))
    }

    @Test(arguments: setups)
    func torchExportCompiles(_ setup: String) throws {
        let (directory, _) = try exported(setup)
        defer { try? FileManager.default.removeItem(at: directory) }
        let (status, output) = python(["-m", "py_compile", directory.appendingPathComponent("check_torch.py").path])
        #expect(status == 0, "\(output)")
        // Run it where PyTorch is installed (not on a fresh CI machine: it is large and not needed elsewhere).
        guard python(["-c", "import torch"]).0 == 0 else {
            print("torchExportCompiles: PyTorch is not importable here, so the script was compiled but not run")
            return
        }
        let (ran, result) = python([directory.appendingPathComponent("check_torch.py").path])
        #expect(ran == 0 && !result.contains("DIFFERS"), "\(setup): \(result)")
    }

    @Test func exportNeedsAPass() {
        let (i, sink) = makeInterpreter()
        let (_, err) = run(i, sink, "layer groupnorm 1", "export numpy /tmp/x.py")
        #expect(err.contains("export needs a forward and a backward pass"))
        let (_, err2) = run(i, sink, "tensor x = randn 2 2 seed 0", "forward", "backward", "export numpy /tmp/x.txt")
        #expect(err2.contains("give a path ending in .py"))
    }
}
