#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NormKit

struct Check: Command, Equatable {
    static let help = CommandHelp(
        name: "check",
        usage: ["check FILE.py [forward=NAME] [backward=NAME] [dtype=float32|float64] [cases=K] [seed=S] [timeout=SECONDS] [replay=PATH.nl]"],
        summary: "test your Python layer on a battery of cases; shrink a failure and name its cause",
        details: """
        Runs FILE.py with python3 (NumPy required) in a child process and calls, for each case,
            forward(x, gamma, beta, groups, eps) -> (y, cache)      # groups only for GroupNorm (RMSNorm with G, grouped BatchNorm)
            backward(dy, cache) -> (dx, dgamma, dbeta)
        with NumPy arrays of the chosen dtype (default the session's); gamma and beta have the layer's parameter
        shape (None where the layer has none). The cases follow the current layer's conventions (preset, eps,
        affine) and vary what bugs hide behind: N (with 1), C, G (1, C and between), spatial rank 0–3, odd sizes;
        random values, constant sets, offsets of 1e3–1e6, variances near eps; random γ, β. Each result is judged
        as `diagnose` judges it, so rounding in your dtype is never a failure. The first failing case is shrunk —
        fewer samples, channels, groups, positions, plainer values — while it still fails; the smallest is shown
        with `diagnose`'s findings and saved as check-failure.nl (or replay=PATH.nl; run it) with .npy files beside it. Cases your code
        refuses (raises) are reported with the exception and skipped. Ends with [pass] or [fail]; in a script
        [fail] is an error (exit status 1). Each call may take `timeout` seconds (default 10). Ctrl-C ends the
        Python process. Other signatures: wrap them in a module of your own, e.g.
            from mylayer import GroupNorm
            def forward(x, gamma, beta, groups, eps):
                layer = GroupNorm(groups, x.shape[1], eps=eps); layer.gamma, layer.beta = gamma, beta
                return layer.forward(x), layer
            def backward(dy, layer):
                dx = layer.backward(dy); return dx, layer.dgamma, layer.dbeta
        """,
        examples: ["check mylayer.py", "check mylayer.py dtype=float32 cases=100 seed=3", "check gn.py forward=gn_forward backward=gn_backward"],
        completion: CompletionRule { request in
            if let (key, prefix) = request.option {
                return Completion.Result(candidates: key == "dtype" ? ["float32", "float64"].filter { $0.hasPrefix(prefix) } : [], wantsPaths: false)
            }
            return request.position == 1 ? .paths : request.matching(["forward=", "backward=", "dtype=", "cases=", "seed=", "timeout=", "replay="])
        })

    let path: Located<String>
    let forwardName: String, backwardName: String
    let dtype: DType?
    let caseCount: Int
    let seed: UInt64
    let timeout: Double
    let replay: String

    init(parsing cursor: inout ArgumentCursor) throws {
        let word = try cursor.word("a Python file")
        path = Located(word.text, word.range)
        var forward = "forward", backward = "backward", dtype: DType? = nil, cases = 40, seed: UInt64 = 0, timeout = 10.0
        var replay = "check-failure.nl"
        for (key, value) in try cursor.options() {
            switch key.text {
            case "forward", "backward":
                guard value.text.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }), value.text.first?.isNumber == false else {
                    throw cursor.error("\(key.text)= takes a Python function name, got \(cursor.describe(value))", at: value)
                }
                if key.text == "forward" { forward = value.text } else { backward = value.text }
            case "dtype":
                guard let type = DType(rawValue: value.text) else { throw cursor.error("dtype= takes float32 or float64", at: value) }
                dtype = type
            case "cases":
                guard let k = Int(value.text), (1...10_000).contains(k) else { throw cursor.error("cases= takes a whole number from 1 to 10000", at: value) }
                cases = k
            case "seed":
                guard let s = UInt64(value.text) else { throw cursor.error("seed= takes a whole number ≥ 0", at: value) }
                seed = s
            case "timeout":
                guard let t = Double(value.text), t > 0, t <= 3600 else { throw cursor.error("timeout= takes seconds, more than 0 and at most 3600", at: value) }
                timeout = t
            case "replay":
                guard value.text.hasSuffix(".nl"), value.text.count > 3 else { throw cursor.error("replay= takes a path ending in .nl", at: value) }
                replay = value.text
            default:
                throw cursor.error("unknown option \(cursor.describe(key)); options are forward=, backward=, dtype=, cases=, seed=, timeout=, replay=", at: key)
            }
        }
        forwardName = forward
        backwardName = backward
        self.dtype = dtype
        caseCount = cases
        self.seed = seed
        self.timeout = timeout
        self.replay = replay
    }

    func run(in context: StatementContext) throws -> Report {
        guard let layer = context.session.layer else {
            throw Diagnostic("choose a layer first: `check` tests your module against the current layer's conventions (say `layer groupnorm 2`)")
        }
        let interpreter = context.interpreter
        let file = interpreter.resolve(path.value)
        guard let info = FileSystem.status(of: file.path) else { throw context.error("no such file: \(Escaping.quoted(path.value))", at: path.range) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw context.error("\(Escaping.quoted(path.value)) is not a regular file", at: path.range) }
        let float32 = (dtype ?? context.session.settings.dtype) == .float32
        let spec = float32 ? layer.spec.resolved(for: Float.self) : layer.spec.resolved(for: Double.self)
        var runner = try CheckRunner(module: file.path, forward: forwardName, backward: backwardName, spec: spec,
                                     float32: float32, timeout: timeout, cancelled: interpreter.isCancelled)
        defer { runner.finish() }
        let cases = CheckBattery.cases(for: spec, count: caseCount, seed: seed)
        interpreter.emit(.text("check \(Escaping.visible(path.value)): \(LayerDescription.title(spec, mode: .train)), \(float32 ? "float32" : "float64"), \(cases.count) cases (seed \(seed))"))
        var passed: [CheckCase] = [], refused: [(CheckCase, String)] = []
        var shownTracebacks = Set<String>()
        for (index, item) in cases.enumerated() {
            switch try runner.run(item, index: index, done: index, of: cases.count) {
            case .pass:
                passed.append(item)
            case .refused(let stage, let traceback):
                let last = CheckRunner.lastLine(traceback)
                refused.append((item, last))
                if shownTracebacks.insert(last).inserted {
                    interpreter.emit(.text("case \(index + 1) (\(item.description)): your \(stage) raised —"))
                    interpreter.emit(.text(traceback.trimmed(newlines: true).split(separator: "\n").map { "  " + $0 }.joined(separator: "\n")))
                }
            case .fails(let problem):
                interpreter.emit(.text("case \(index + 1) fails: \(item.description): \(problem.summary)"))
                return try shrinkAndReport(item, problem: problem, runner: &runner, context: context, tried: index + 1)
            }
        }
        var lines = Report()
        if !refused.isEmpty {
            let reasons = Dictionary(grouping: refused, by: \.1).map { "\($0.value.count) × \($0.key)" }.sorted()
            lines.line("refused \(refused.count) of \(cases.count) cases (your code raised): " + reasons.joined(separator: "; "))
        }
        guard !passed.isEmpty else {
            throw Diagnostic("[fail] your code raised on every case: nothing could be checked")
        }
        lines.line("[pass] \(passed.count) cases agree with NormLab within your dtype's rounding (\(CheckBattery.summary(passed)))")
        return lines
    }

    /// Shrink `failing` while it still fails, show the smallest with `diagnose`'s findings, save it, and fail.
    private func shrinkAndReport(_ failing: CheckCase, problem: CheckRunner.Problem, runner: inout CheckRunner,
                                 context: StatementContext, tried: Int) throws -> Report {
        var smallest = failing, smallestProblem = problem
        var attempts = 0
        var improved = true
        // A smaller case must fail the same way (the same causes, or no named cause when there was none), and
        // keep sets of two or more elements where the failing one had them: in a set of one, x̂ = 0 and every
        // mistake looks alike.
        let base = runner.spec
        let setSize = { (item: CheckCase) in (try? NormPlan(spec: item.spec(from: base), inputShape: Shape(item.dims)).setSize) ?? 0 }
        let keepsSets = setSize(failing) >= 2
        while improved && attempts < 120 {
            improved = false
            for candidate in smallest.smaller(statisticsSpanBatch: runner.spec.kind.statisticsSpanBatch) {
                if keepsSets && setSize(candidate) < 2 { continue }
                attempts += 1
                if case .fails(let p) = try runner.run(candidate, index: nil, done: tried, of: tried),
                   p.causes == problem.causes, (p.view == nil) == (problem.view == nil) {
                    smallest = candidate
                    smallestProblem = p
                    improved = true
                    break
                }
                if attempts >= 120 { break }
            }
        }
        let interpreter = context.interpreter
        interpreter.emit(.text("smallest failing case after \(attempts) tries: \(smallest.description): \(plural(smallest.count, "element", "elements"))"))
        if let view = smallestProblem.view { interpreter.emit(.diagnosis(view)) } else { interpreter.emit(.text("  " + smallestProblem.summary)) }
        let saved = try CheckReplay.save(smallest, problem: smallestProblem, runner: runner, module: path.value, seed: seed,
                                         replay: replay, interpreter: interpreter)
        interpreter.emit(.text("saved \(saved): `run \(replay)` replays it and runs diagnose"))
        let causes = smallestProblem.causes
        let why = !causes.isEmpty ? causes.joined(separator: ", ")
            : smallestProblem.view == nil ? smallestProblem.summary : "differs from NormLab beyond rounding, no known mistake reproduces it"
        throw Diagnostic("[fail] \(smallest.description) — " + why)
    }
}
