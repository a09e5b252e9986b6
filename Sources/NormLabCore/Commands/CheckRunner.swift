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

/// Runs `check`'s cases through the user's module in a python3 child: writes a case's tensors as .npy into a
/// private temporary folder, asks the harness to call forward and backward, reads the results back and judges
/// them as `diagnose` does.
struct CheckRunner {
    enum Outcome {
        case pass
        /// The user's code raised (in forward or backward): that shape is refused, not a failure.
        case refused(stage: String, traceback: String)
        case fails(Problem)
    }

    /// Why a case fails, with what is needed to show and replay it.
    struct Problem {
        let summary: String
        let view: DiagnosisView?
        /// "[missing-mean-term]", … from diagnose, when a cause was found.
        let causes: [String]
        let spec: LayerSpec
        let dims: [Int]
        let inputs: (x: [Double], gamma: [Double]?, beta: [Double]?, dy: [Double])
        let results: [DiagnosisRole: (values: [Double], shape: [Int])]
        /// Which results the user's code computed in float32 (saved so, so that a replay judges them so).
        var resultFloat32: [DiagnosisRole: Bool] = [:]
    }

    private struct Request: Encodable { let dir: String, dtype: String, groups: Int?, eps: Double }
    private struct Reply: Decodable {
        let ok: Bool
        let stage: String?
        let message: String?
        let traceback: String?
        let shapes: [String: [Int]]?
        let dtypes: [String: String]?
    }

    let spec: LayerSpec
    let float32: Bool
    let timeout: Double
    let cancelled: @Sendable () -> Bool
    private let workspace: String
    private var child: PythonChild?

    init(module: String, forward: String, backward: String, spec: LayerSpec, float32: Bool, timeout: Double,
         cancelled: @escaping @Sendable () -> Bool) throws {
        self.spec = spec
        self.float32 = float32
        self.timeout = timeout
        self.cancelled = cancelled
        let folder = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array(PathText.appending("normlab-check-XXXXXX", to: folder).utf8CString)
        guard let made = mkdtemp(&template) else {
            throw Diagnostic("cannot make a temporary folder in \(folder): \(FileSystem.lastError)")
        }
        workspace = String(cString: made)
        do {
            try FileSystem.create(PathText.appending("harness.py", to: workspace), with: Data(CheckHarness.source.utf8))
            child = try PythonChild.start([PathText.appending("harness.py", to: workspace), module, forward, backward],
                                          errorLog: PathText.appending("stderr.log", to: workspace))
        } catch let failure as PythonChild.StartFailure {
            Self.remove(workspace)
            throw Diagnostic(failure.message)
        } catch {
            Self.remove(workspace)
            throw Diagnostic("cannot prepare the check: \(error)")
        }
        let ready = try reply(waiting: max(timeout, 30), what: "loading \(PathText.lastComponent(module))")
        guard ready.ok else {
            finish()
            if ready.stage == "numpy" { throw Diagnostic(ready.message ?? "NumPy is missing") }
            let why = ready.traceback.map { "\n" + $0.trimmed(newlines: true) } ?? (ready.message.map { ": " + $0 } ?? "")
            throw Diagnostic("[fail] \(PathText.lastComponent(module)) could not be loaded" + why)
        }
    }

    /// Stop the child and remove the temporary folder.
    mutating func finish() {
        child?.stop()
        child = nil
        Self.remove(workspace)
    }

    private static func remove(_ folder: String) {
        for name in ["harness.py", "stderr.log", "x.npy", "gamma.npy", "beta.npy", "dy.npy",
                     "out_y.npy", "out_dx.npy", "out_dgamma.npy", "out_dbeta.npy"] {
            _ = unlink(PathText.appending(name, to: folder))
        }
        _ = rmdir(folder)
    }

    static func lastLine(_ traceback: String) -> String {
        traceback.trimmed(newlines: true).split(separator: "\n").last.map(String.init) ?? traceback
    }

    private func reply(waiting seconds: Double, what: String) throws -> Reply {
        guard let child else { throw Diagnostic("internal: the Python process is not running") }
        switch child.readLine(timeout: seconds, cancelled: cancelled) {
        case .line(let line):
            guard let reply = try? JSONDecoder().decode(Reply.self, from: Data(line.utf8)) else {
                throw Diagnostic("[fail] the Python process answered something unexpected while \(what): \(Escaping.visible(String(line.prefix(200))))")
            }
            return reply
        case .timedOut:
            child.stop()
            throw Diagnostic("[fail] no answer within \(formatOption(seconds)) s while \(what): the Python process was ended (does your code loop forever, or wait for input?)")
        case .closed:
            throw Diagnostic("[fail] python3 exited while \(what)" + errorTail())
        case .cancelled:
            child.stop()
            throw NormError(.interrupted, "check stopped while \(what); the Python process was ended")
        }
    }

    /// The last lines the child wrote to standard error, for a crash report.
    private func errorTail() -> String {
        guard let data = FileSystem.contents(of: PathText.appending("stderr.log", to: workspace)), !data.isEmpty else { return "" }
        let lines = String(decoding: data, as: UTF8.self).trimmed(newlines: true).split(separator: "\n").suffix(8)
        return ":\n" + lines.map { "  " + $0 }.joined(separator: "\n")
    }

    /// Run one case; `index` names it in messages (nil while shrinking).
    mutating func run(_ item: CheckCase, index: Int?, done: Int, of total: Int) throws -> Outcome {
        if cancelled() { child?.stop(); throw NormError(.interrupted, "check stopped after \(done) of \(total) cases; the Python process was ended") }
        let caseSpec = item.spec(from: spec)
        let (x, gamma, beta, dy, plan) = try item.tensors(spec: caseSpec, float32: float32)
        let shape = plan.inputShape
        func save(_ name: String, _ values: [Double], _ dims: Shape) throws {
            let tensor: AnyTensor = float32
                ? .float32(try Tensor<Float>(shape: dims, scalars: values.map { Float($0) }))
                : .float64(try Tensor<Double>(shape: dims, scalars: values))
            try FileSystem.create(PathText.appending(name + ".npy", to: workspace), with: NPY.encode(tensor))
        }
        for name in ["gamma", "beta", "out_y", "out_dx", "out_dgamma", "out_dbeta"] { _ = unlink(PathText.appending(name + ".npy", to: workspace)) }
        try save("x", x, shape)
        try save("dy", dy, shape)
        if let gamma, let affine = plan.affineShape { try save("gamma", gamma, affine) }
        if let beta, let affine = plan.affineShape { try save("beta", beta, affine) }
        let request = Request(dir: workspace, dtype: float32 ? "float32" : "float64", groups: item.groups, eps: caseSpec.eps)
        let line = String(decoding: try JSONEncoder().encode(request), as: UTF8.self)
        guard child?.send(line) == true else { throw Diagnostic("[fail] python3 exited before case \((index ?? done) + 1)" + errorTail()) }
        let what = index.map { "running case \($0 + 1) (\(item.description))" } ?? "running a smaller case (\(item.description))"
        let answer = try reply(waiting: timeout, what: what)
        guard answer.ok else {
            let traceback = answer.traceback ?? answer.message ?? "(no message)"
            if answer.stage == "results" { return .fails(problem(item, caseSpec, x, gamma, beta, dy, [:], summary: Self.lastLine(traceback))) }
            return .refused(stage: answer.stage ?? "code", traceback: traceback)
        }
        var results: [DiagnosisRole: (values: [Double], shape: [Int])] = [:]
        var float32Results: [DiagnosisRole: Bool] = [:]
        for role in DiagnosisRole.allCases {
            guard let dims = answer.shapes?[role.rawValue] else { continue }
            guard let data = FileSystem.contents(of: PathText.appending("out_\(role.rawValue).npy", to: workspace)),
                  let loaded = try? NPY.decode(data) else {
                return .fails(problem(item, caseSpec, x, gamma, beta, dy, [:], summary: "\(role) could not be read back"))
            }
            results[role] = (loaded.tensor.doubles, dims)
            float32Results[role] = answer.dtypes?[role.rawValue] == "float32"
        }
        // Shapes first: a result of the wrong shape cannot be compared element by element.
        for role in DiagnosisRole.allCases {
            let expected = role == .y || role == .dx ? shape.dims : plan.affineShape?.dims
            guard let expected, role != .dbeta || caseSpec.bias else { continue }
            guard let result = results[role] else {
                return .fails(problem(item, caseSpec, x, gamma, beta, dy, results, summary: "\(role == .y ? "forward" : "backward") returned no \(role) (expected shape \(Shape.describe(expected)))"))
            }
            if result.shape != expected {
                return .fails(problem(item, caseSpec, x, gamma, beta, dy, results, summary: "\(role) has shape \(Shape.describe(result.shape)); expected \(Shape.describe(expected))"))
            }
        }
        let report: DiagnosisReport
        do {
            report = try Diagnosis.run(spec: caseSpec, shape: shape, x: x, gamma: gamma, beta: beta, dy: dy,
                                       user: results.mapValues(\.values), float32: float32Results)
        } catch {
            return .refused(stage: "NormLab's own pass", traceback: "\(error)")
        }
        guard report.findings.contains(where: { $0.verdict == .differs }) else { return .pass }
        let view = DiagnosisView(title: LayerDescription.title(caseSpec, mode: .train),
                                 names: Dictionary(uniqueKeysWithValues: results.keys.map { ($0, "your \($0)") }),
                                 report: report, spec: caseSpec, batch: plan.batch, setSize: plan.setSize, forwardOnly: false)
        let differing = report.findings.filter { $0.verdict == .differs }
        let causes = differing.compactMap { ($0.cause ?? $0.followsForward).map { "[\($0.rawValue)]" } }
        let summary = differing.map { "\($0.role) differs" + (($0.cause ?? $0.followsForward).map { " [\($0.rawValue)]" } ?? "") }.joined(separator: ", ")
        return .fails(Problem(summary: summary, view: view, causes: Array(Set(causes)).sorted(), spec: caseSpec, dims: shape.dims,
                              inputs: (x, gamma, beta, dy), results: results, resultFloat32: float32Results))
    }

    private func problem(_ item: CheckCase, _ spec: LayerSpec, _ x: [Double], _ gamma: [Double]?, _ beta: [Double]?,
                         _ dy: [Double], _ results: [DiagnosisRole: (values: [Double], shape: [Int])], summary: String) -> Problem {
        Problem(summary: summary, view: nil, causes: [], spec: spec, dims: item.dims, inputs: (x, gamma, beta, dy), results: results)
    }
}

extension Shape {
    /// "(2, 4, 3)", "(4)", "()"
    static func describe(_ dims: [Int]) -> String { "(" + dims.map(String.init).joined(separator: ", ") + ")" }
}
