import NormKit

/// What a difference between two tensors can reveal, for `compare`. When one of them is the layer's own y, dx,
/// dγ or dβ (by name, and equal to the last pass's), the other is judged as that role by `Diagnosis`: its hint
/// is specific to the role and the dtype, and names a cause only when recomputing it reproduces the tensor.
/// Otherwise only what any two tensors can show is said: a sign flip, a factor of the batch size.
enum CompareHints {
    static func hints(_ a: AnyTensor, _ b: AnyTensor, names: (String, String), context: StatementContext) -> [String] {
        let x = a.doubles, y = b.doubles
        guard x.allSatisfy(\.isFinite), y.allSatisfy(\.isFinite), !close(x, y, 1e-9) else { return [] }
        if let hint = roleHint(a, b, names: names, context: context) { return hint }
        var hints: [String] = []
        if close(x, y.map { -$0 }, 1e-6) {
            hints.append("\(names.0) ≈ −\(names.1): a sign flip (the gradient of −L, or dy negated)")
        }
        if let plan = context.session.layer?.passRecord?.plan, plan.batch > 1 {
            let n = Double(plan.batch)
            if close(x, y.map { $0 * n }, 1e-6) {
                hints.append("\(names.0) ≈ N·\(names.1) with N = \(plan.batch), the batch: a sum against a mean over the batch")
            } else if close(x, y.map { $0 / n }, 1e-6) {
                hints.append("\(names.0) ≈ \(names.1)/N with N = \(plan.batch), the batch: a mean against a sum over the batch")
            }
        }
        return hints
    }

    /// The layer's role of one of the two tensors, and the other judged as that role.
    static func roleHint(_ a: AnyTensor, _ b: AnyTensor, names: (String, String), context: StatementContext) -> [String]? {
        guard let record = try? context.passRecord(""), record.mode == .train else { return nil }
        for (own, ownName, other, otherName) in [(b, names.1, a, names.0), (a, names.0, b, names.1)] {
            guard let role = DiagnosisRole(rawValue: ownName), own.shape == other.shape else { continue }
            let values: [Double]?
            switch role {
            case .y: values = record.y
            case .dx: values = record.dx
            case .dgamma: values = record.dgamma
            case .dbeta: values = record.dbeta
            }
            guard let values, values == own.doubles, role == .y || record.dy != nil,
                  let report = try? Diagnosis.run(spec: record.spec, shape: record.plan.inputShape, x: record.x, gamma: record.gamma,
                                                  beta: record.beta, dy: record.dy ?? [Double](repeating: 0, count: record.x.count),
                                                  user: [role: other.doubles], float32: [role: other.dtype == .float32],
                                                  formats: [role: other.dtype]),
                  let finding = report.findings.first else { continue }
            var view = DiagnosisView(title: "", names: [role: otherName], report: report, spec: record.spec,
                                     batch: record.plan.batch, setSize: record.plan.setSize, forwardOnly: record.dy == nil)
            view.format = other.dtype
            let see = " (diagnose \(role)=\(otherName) says more)"
            switch finding.verdict {
            case .match: return []
            case .rounding:
                return ["the difference is \(other.dtype) rounding for this data, not a bug: within the estimate once the mean's offset (|μ|·rstd up to \(formatNumber(finding.amplification, precision: 0))) is counted" + see]
            case .differs:
                if let cause = finding.cause {
                    return ["[\(cause)] " + DiagnosisWords.explanation(cause, view, subject: otherName, fitted: finding.fittedValue) + see]
                }
                if let note = DiagnosisWords.inputRoundingNote(report.inputRounding) { return [note + see] }
                var hint = "no single known mistake reproduces \(otherName)"
                if let fit = finding.termFit {
                    hint += "; as terms, \(otherName) ≈ \(DiagnosisWords.coefficient(fit.a))·T1 + \(DiagnosisWords.coefficient(fit.b))·T2 + \(DiagnosisWords.coefficient(fit.c))·T3 (a correct dx is 1, 1, 1)"
                }
                return [hint + see]
            }
        }
        return nil
    }

    /// Elementwise |x − y| ≤ rtol·max(|x|, |y|, 1e-6·scale).
    static func close(_ x: [Double], _ y: [Double], _ rtol: Double) -> Bool {
        guard x.count == y.count, !x.isEmpty else { return false }
        let scale = max(x.map(abs).max() ?? 0, y.map(abs).max() ?? 0)
        guard scale > 0 else { return true }
        return zip(x, y).allSatisfy { abs($0 - $1) <= rtol * max(abs($0), abs($1), 1e-6 * scale) }
    }
}
