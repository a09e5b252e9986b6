#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NormKit

/// `check`'s smallest failing case, saved in the working folder: the inputs and the user's results as .npy,
/// and check-failure.nl, a NormLab script that loads them, runs the layer and `diagnose`.
enum CheckReplay {
    /// Write every file, or none; returns what was written ("check-failure.nl and 8 .npy files").
    /// `replay`: the script's path as the user gave it (the .npy files are named after it: PATH-x.npy, …).
    static func save(_ item: CheckCase, problem: CheckRunner.Problem, runner: CheckRunner, module: String, seed: UInt64,
                     replay: String, interpreter: Interpreter) throws -> String {
        let stem = replay.hasSuffix(".nl") ? String(replay.dropLast(3)) : replay
        let spec = problem.spec
        let shape = try Shape(problem.dims)
        let plan = try NormPlan(spec: spec, inputShape: shape)
        var files: [(Data, URL)] = []
        var script = [
            "# check \(module): the smallest failing case (seed \(seed)): \(item.description)",
            "# Made by NormLab's `check`; run it with `run \(replay)` or `normlab \(replay)`.",
        ]
        if runner.float32 { script.append("set dtype float32") }
        script.append(layerStatement(spec))
        func add(_ name: String, _ values: [Double], _ dims: Shape, float32: Bool) throws {
            let tensor: AnyTensor = float32 ? .float32(try Tensor<Float>(shape: dims, scalars: values.map { Float($0) }))
                                            : .float64(try Tensor<Double>(shape: dims, scalars: values))
            files.append((NPY.encode(tensor), interpreter.resolve("\(stem)-\(name).npy")))
            script.append("load \(name) \(stem)-\(name).npy")
        }
        try add("x", problem.inputs.x, shape, float32: runner.float32)
        if let gamma = problem.inputs.gamma, let affine = plan.affineShape {
            try add("gamma_in", gamma, affine, float32: runner.float32)
            script.append("param gamma = gamma_in")
        }
        if let beta = problem.inputs.beta, let affine = plan.affineShape {
            try add("beta_in", beta, affine, float32: runner.float32)
            script.append("param beta = beta_in")
        }
        script.append("forward x")
        try add("dy_in", problem.inputs.dy, shape, float32: runner.float32)
        script.append("backward dy_in")
        var judged: [String] = []
        for role in DiagnosisRole.allCases {
            guard let result = problem.results[role], result.values.count == result.shape.reduce(1, *) else { continue }
            try add("your_\(role.rawValue)", result.values, try Shape(result.shape), float32: problem.resultFloat32[role] ?? false)
            judged.append("\(role.rawValue)=your_\(role.rawValue)")
        }
        if !judged.isEmpty { script.append("diagnose " + judged.joined(separator: " ")) }
        files.append((Data((script.joined(separator: "\n") + "\n").utf8), interpreter.resolve(replay)))
        do {
            try AtomicFile.write(files)
        } catch {
            throw Diagnostic("[fail] the smallest failing case could not be saved: \(error.message)")
        }
        return "\(replay) and \(files.count - 1) .npy files beside it"
    }

    /// The `layer …` statement that makes `spec`, every convention spelled out.
    static func layerStatement(_ spec: LayerSpec) -> String {
        if spec.groupsSpanBatch {
            // Only `layer norm` builds it, with the default variance and paramgrad.
            let affine = [Affine.none: "none", .channel: "c", .element: "c,s"][spec.affine]!
            return "layer norm over=\(spec.reduce == .group ? "n,c,s" : "n,c") groups=\(spec.groups ?? 1) affine=\(affine) eps=\(formatOption(spec.eps))"
        }
        var words = ["layer", spec.kind.rawValue]
        if let shape = spec.normalizedShape {
            words.append("shape=" + shape.map(String.init).joined(separator: ","))
        } else if let groups = spec.groups, spec.kind.takesGroupCount {
            words.append(String(groups))
        }
        if spec.normalizedShape == nil {
            words.append("reduce=\(spec.reduce.rawValue)")
            words.append("affine=\(spec.affine.rawValue)")
            words.append("variance=\(spec.variance.rawValue)")
        }
        words.append("paramgrad=\(spec.paramGrad.rawValue)")
        words.append("eps=\(formatOption(spec.eps))")
        return words.joined(separator: " ")
    }
}
