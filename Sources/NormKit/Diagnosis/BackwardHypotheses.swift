#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Mistakes in a backward pass whose forward is right. dx is fitted as a·T1 + b·T2 + c·T3, the three terms of
/// the closed form (the fit is reported whatever it finds); each hypothesis is then recomputed in full and kept
/// only if it reproduces the user's tensor within the rounding estimate.
struct BackwardHypotheses {
    let reference: DiagnosisPass
    let judge: Judge

    func explain(_ values: [Double], finding: DiagnosisFinding) -> DiagnosisFinding {
        switch judge.role {
        case .dx: return explainDx(values)
        case .dgamma, .dbeta: return explainParameter(values) ?? finding
        case .y: return finding
        }
    }

    private func explainDx(_ dx: [Double]) -> DiagnosisFinding {
        let r = reference
        let (t1, t2, t3) = r.terms(r.dxhat())
        let fit = Self.fit(dx, [t1, t2, t3])
        func sum(_ a: Double, _ b: Double, _ c: Double) -> [Double] { (0..<r.count).map { a * t1[$0] + b * t2[$0] + c * t3[$0] } }
        var candidates: [(DiagnosisCause, () -> [Double], Double?)] = [
            (.dxNegated, { sum(-1, -1, -1) }, nil),
            (.missingXhatTerm, { sum(1, 1, 0) }, nil),
            (.xhatTermSign, { sum(1, 1, -1) }, nil),
        ]
        if r.spec.centres { candidates.append((.missingMeanTerm, { sum(1, 0, 1) }, nil)) }
        if r.plan.batch > 1 { candidates.append((.lossAveraged, { sum(1, 1, 1).map { $0 / Double(r.plan.batch) } }, Double(r.plan.batch))) }
        if r.gamma != nil {
            candidates.append((.dxMissingGamma, {
                let (u1, u2, u3) = r.terms(r.dxhat(useGamma: false))
                return (0..<r.count).map { u1[$0] + u2[$0] + u3[$0] }
            }, nil))
        }
        // m counted as m′: both terms that divide by m scale by m/m′.
        var sizes = Set([r.plan.channelsPerGroup, r.plan.spatial, r.plan.setSize * r.plan.batch])
        // A set size the fit implies, if it is one a layer could have (a tiny b implies an absurd one: 1e300 > Int.max).
        let implied = (r.m / fit.b).rounded()
        if fit.b.isFinite, fit.b > 0, implied.isFinite, implied <= Double(1 << 40) { sizes.insert(max(1, Int(implied))) }
        for used in sizes.sorted() where used != r.plan.setSize && used >= 1 {
            let k = r.m / Double(used)
            candidates.append((.wrongSetSize, { sum(1, r.spec.centres ? k : 0, k) }, Double(used)))
        }
        // (σ² + eps) to another power in ∂σ²: the x̂ term scales by rstd^(p − 3) in each set.
        for power in [1, 2, 4, 5] {
            candidates.append((.rstdPower, {
                (0..<r.count).map { t1[$0] + t2[$0] + pow(r.rstd[r.setOf[$0]], Double(power - 3)) * t3[$0] }
            }, Double(power)))
        }
        for (cause, candidate, fitted) in candidates where judge.reproduces(candidate(), dx) {
            return judge.compare(dx, cause: cause, fit: fit, fitted: fitted)
        }
        return judge.compare(dx, fit: fit)
    }

    private func explainParameter(_ values: [Double]) -> DiagnosisFinding? {
        let r = reference
        guard let expected = judge.expected else { return nil }
        let n = Double(r.plan.batch)
        var candidates: [(DiagnosisCause, [Double])] = []
        if n > 1 {
            if r.spec.paramGrad == .sum { candidates.append((.paramGradMean, expected.map { $0 / n })) }
            else { candidates.append((.paramGradSum, expected.map { $0 * n })) }
        }
        if judge.role == .dgamma {
            if let dy = r.parameterGradient(nil) { candidates.append((.dgammaWithoutXhat, dy)) }
            if let dyY = r.parameterGradient(r.y) { candidates.append((.dgammaUsesY, dyY)) }
        }
        for (cause, candidate) in candidates where judge.reproduces(candidate, values) {
            return judge.compare(values, cause: cause)
        }
        return nil
    }

    /// Least squares of `target` on the columns (solved from the normal equations; a column that is all zero,
    /// such as T2 for RMSNorm, gets coefficient 0).
    static func fit(_ target: [Double], _ columns: [[Double]]) -> TermFit {
        let k = columns.count
        var a = [[Double]](repeating: [Double](repeating: 0, count: k + 1), count: k)
        for i in 0..<k {
            for j in 0..<k { a[i][j] = zip(columns[i], columns[j]).reduce(0) { $0 + $1.0 * $1.1 } }
            a[i][k] = zip(columns[i], target).reduce(0) { $0 + $1.0 * $1.1 }
        }
        let active = (0..<k).filter { a[$0][$0] > 0 }
        var m = active.map { i in active.map { a[i][$0] } + [a[i][k]] }
        let n = active.count
        var ok = true
        for col in 0..<n {
            guard let pivot = (col..<n).max(by: { abs(m[$0][col]) < abs(m[$1][col]) }), abs(m[pivot][col]) > 1e-300 else { ok = false; break }
            m.swapAt(col, pivot)
            for row in 0..<n where row != col {
                let f = m[row][col] / m[col][col]
                for c in col...n { m[row][c] -= f * m[col][c] }
            }
        }
        var coefficients = [Double](repeating: ok ? 0 : .nan, count: k)
        if ok { for (j, i) in active.enumerated() { coefficients[i] = m[j][n] / m[j][j] } }
        let fitted = (0..<target.count).map { i in (0..<k).reduce(0.0) { $0 + coefficients[$1] * columns[$1][i] } }
        let norm = target.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let residual = zip(target, fitted).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
        return TermFit(a: coefficients[0], b: coefficients[1], c: coefficients[2], residual: norm > 0 ? residual / norm : residual)
    }
}
