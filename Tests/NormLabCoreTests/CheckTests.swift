import Foundation
import Testing
@testable import NormLabCore

/// Whether python3 with NumPy can run here (the `check` tests need it).
enum PythonWithNumPy {
    static let available: Bool = runProcess("/usr/bin/env", ["python3", "-c", "import numpy"]).0 == 0
}

/// `check` on the implementations in Fixtures/check: a correct GroupNorm and copies of it with one mistake each
/// (some of which hide on some shapes), and modules that fail to load, refuse shapes, return the wrong shape,
/// never return, or print.
@Suite(.serialized, .enabled(if: PythonWithNumPy.available, "python3 with NumPy is not available here: the `check` tests were skipped"))
struct CheckTests {
    static let subjects = Repository.fixtures.appendingPathComponent("check")

    /// Run `check SUBJECT.py options` after `layer groupnorm 2` in a fresh temporary folder; the output (both
    /// channels), whether it succeeded, and the folder (removed by the caller's `defer`).
    func check(_ subject: String, _ options: String = "", setup: String = "layer groupnorm 2",
               body: (_ output: String, _ succeeded: Bool, _ folder: URL, _ interpreter: Interpreter, _ sink: BufferSink) throws -> Void) throws {
        let folder = try makeTemporaryDirectory("check")
        defer { try? FileManager.default.removeItem(at: folder) }
        let sink = BufferSink()
        let interpreter = Interpreter(sink: sink, workingDirectory: folder.path)
        #expect(interpreter.execute(setup))
        let before = sink.transcript.count
        let succeeded = interpreter.execute("check \(Self.subjects.appendingPathComponent(subject + ".py").path) \(options)")
        try body(String(sink.transcript.dropFirst(before)), succeeded, folder, interpreter, sink)
    }

    @Test(arguments: ["float64", "float32"])
    func aCorrectLayerPasses(_ dtype: String) throws {
        try check("correct", "dtype=\(dtype)") { output, succeeded, folder, _, _ in
            #expect(succeeded, "\(output)")
            #expect(output.contains("[pass] 40 cases agree with NormLab within your dtype's rounding (N 1–4, C 1–12, G 1–4, spatial rank 0–3)"))
            #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("check-failure.nl").path))
        }
    }

    /// Each mistake is found, shrunk to a few elements, named by diagnose's ID, and saved as a replay that names it too.
    @Test(arguments: [
        ("missing_mean_term", "float64", "[missing-mean-term]"), ("interleaved_groups", "float64", "[interleaved-groups]"),
        ("param_grad_mean", "float64", "[param-grad-mean]"), ("eps_outside_sqrt", "float64", "[eps-outside-sqrt]"),
        ("unbiased_variance", "float64", "[unbiased-variance]"), ("one_pass_variance", "float32", "[onepass-cancellation]"),
    ])
    func aMistakeIsFoundShrunkAndNamed(_ subject: String, _ dtype: String, _ cause: String) throws {
        try check(subject, "dtype=\(dtype)") { output, succeeded, folder, interpreter, sink in
            #expect(!succeeded)
            let verdict = try #require(output.split(separator: "\n").first { $0.contains("error: [fail]") })
            #expect(verdict.contains(cause), "\(verdict)")
            let smallest = try #require(output.split(separator: "\n").first { $0.hasPrefix("smallest failing case") })
            let elements = Int(smallest.split(separator: " ").dropLast().last ?? "") ?? .max
            #expect(elements <= 36, "\(smallest)")
            // The replay script runs on its own and diagnose names the same mistake.
            let replay = folder.appendingPathComponent("check-failure.nl")
            #expect(FileManager.default.fileExists(atPath: replay.path))
            let before = sink.transcript.count
            #expect(interpreter.execute("run check-failure.nl"))
            #expect(String(sink.transcript.dropFirst(before)).contains(cause))
        }
    }

    /// Bugs that hide on some shapes are shrunk to a shape that still shows them.
    @Test func hidingBugsKeepTheShapeThatShowsThem() throws {
        try check("interleaved_groups") { output, _, _, _, _ in
            // Interleaving is invisible with G = 1 or G = C: the smallest case keeps 1 < G < C.
            #expect(output.contains("smallest failing case after"))
            #expect(output.contains("x (1, 4) G = 2"), "\(output)")
        }
        try check("param_grad_mean") { output, _, _, _, _ in
            // A batch mean equals the sum when N = 1: the smallest case keeps N = 2.
            #expect(output.contains("x (2, 2) G = 1"), "\(output)")
        }
    }

    @Test func modulesThatCannotBeCheckedSaySo() throws {
        try check("syntax_error") { output, succeeded, _, _, _ in
            #expect(!succeeded)
            #expect(output.contains("error: [fail] syntax_error.py could not be loaded"))
            #expect(output.contains("SyntaxError: expected ':'"))
        }
        try check("wrong_shape") { output, succeeded, _, _, _ in
            #expect(!succeeded)
            #expect(output.contains("case 1 fails: x (2, 4, 3, 3) G = 2, random values, random γ, β: dgamma has shape (1, 4, 1, 1); expected (4)"))
        }
        try check("never_returns", "timeout=1") { output, succeeded, _, _, _ in
            #expect(!succeeded)
            #expect(output.contains("[fail] no answer within 1 s while running case 1"))
            #expect(output.contains("the Python process was ended"))
        }
        try check("correct", forwardName: "go") { output, succeeded, _, _, _ in
            #expect(!succeeded)
            #expect(output.contains("correct.py has no function go"))
        }
    }

    func check(_ subject: String, forwardName: String,
               body: (String, Bool, URL, Interpreter, BufferSink) throws -> Void) throws {
        try check(subject, "forward=\(forwardName)", body: body)
    }

    @Test func refusedShapesAreReportedAndTheRestChecked() throws {
        try check("rank4_only") { output, succeeded, _, _, _ in
            #expect(succeeded, "\(output)")
            #expect(output.contains("your forward raised —"))
            #expect(output.contains("ValueError: expected a 4-D input (N, C, H, W), got 3-D"))
            #expect(!output.contains("harness.py"), "the traceback shows the user's frames only")
            #expect(output.contains("refused 24 of 40 cases (your code raised)"))
            #expect(output.contains("[pass] 16 cases agree with NormLab"))
        }
        try check("prints") { output, succeeded, _, _, _ in
            #expect(succeeded, "a module that prints does not disturb the check: \(output)")
            #expect(!output.contains("forward called with"))
        }
    }

    @Test func checksAreDeterministicAndInterruptible() throws {
        var outputs: [String] = []
        for _ in 0..<2 {
            try check("missing_mean_term", "seed=5 cases=20") { output, _, _, _, _ in outputs.append(output) }
        }
        #expect(outputs[0] == outputs[1])
        let (interpreter, sink) = makeInterpreter()
        #expect(run(interpreter, sink, "check Tests/NormLabCoreTests/Fixtures/check/correct.py").1.contains("choose a layer first"))
        #expect(run(interpreter, sink, "layer groupnorm 2; check nowhere.py").1.contains("no such file: 'nowhere.py'"))
        interpreter.isCancelled = { true }
        let stopped = run(interpreter, sink, "check Tests/NormLabCoreTests/Fixtures/check/correct.py").1
        #expect(stopped.contains("interrupted: check stopped"), "\(stopped)")
    }

    /// BatchNorm with grouped channels (`layer norm over=n,c,s groups=G`) is called with groups: an independently
    /// written module passes, its copy without the mean term is named, and a GroupNorm module — the same sets
    /// within each sample — is named as statistics that leave out the batch axis.
    @Test func groupedBatchNormIsCheckedWithGroups() throws {
        let setup = "layer norm over=n,c,s groups=2"
        try check("batch_groups", setup: setup) { output, succeeded, _, _, _ in
            #expect(succeeded, "\(output)")
            #expect(output.contains("[pass] 40 cases agree with NormLab"), "\(output)")
        }
        try check("batch_groups_missing_mean", setup: setup) { output, succeeded, folder, interpreter, sink in
            #expect(!succeeded)
            let verdict = try #require(output.split(separator: "\n").first { $0.contains("error: [fail]") })
            #expect(verdict.contains("[missing-mean-term]"), "\(verdict)")
            let replay = try String(contentsOf: folder.appendingPathComponent("check-failure.nl"), encoding: .utf8)
            #expect(replay.contains("layer norm over=n,c,s groups="), "\(replay)")
            let before = sink.transcript.count
            #expect(interpreter.execute("run check-failure.nl"))
            #expect(String(sink.transcript.dropFirst(before)).contains("[missing-mean-term]"))
        }
        try check("correct", setup: setup) { output, succeeded, _, _, _ in
            #expect(!succeeded)
            let verdict = try #require(output.split(separator: "\n").first { $0.contains("error: [fail]") })
            #expect(verdict.contains("[per-sample-statistics]"), "\(verdict)")
        }
    }

    /// nn.LayerNorm and nn.RMSNorm forms (shape=) are called without groups; RMSNorm gets beta = None and
    /// returns no dβ.
    @Test(arguments: ["layer layernorm shape=4", "layer rmsnorm shape=3,4"])
    func lastDimsLayersAreCheckedWithoutGroups(_ setup: String) throws {
        for dtype in ["float64", "float32"] {
            try check("layernorm_last", "dtype=\(dtype)", setup: setup) { output, succeeded, _, _, _ in
                #expect(succeeded, "\(output)")
                #expect(output.contains("[pass] 40 cases agree with NormLab"))
            }
        }
    }

    @Test func otherLayersAreCheckedInTheirConventions() throws {
        // The correct GroupNorm module is a correct LayerNorm when called with groups = 1... but LayerNorm is
        // called without groups: the module must take what the help says, and NormLab says what failed.
        try check("correct", setup: "layer layernorm") { output, succeeded, _, _, _ in
            #expect(!succeeded || output.contains("refused"))
            #expect(output.contains("missing 1 required positional argument: 'eps'"))
        }
    }
}
