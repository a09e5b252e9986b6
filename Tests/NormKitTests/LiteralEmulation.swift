@testable import NormKit

/// The emulated passes as first written (session 12 and before): every element through
/// `Normalization.forEachElement`, every operation a Double rounded by `DType.round`. Kept as the oracle that
/// `EmulatedKernels` (native arithmetic, chains on threads and side by side) must match bit for bit.
enum LiteralEmulation {
    /// What the emulated forward produced, every value in the accumulation format.
    struct Forward {
        var means: [Double]
        var variances: [Double]
        var unbiased: [Double]?
        var rstds: [Double]
        var normalized: [Double]
        var output: [Double]
        var findings: [NormWarning]
        /// Sets where a square or a sum overflowed.
        var overflowed: [Bool]
    }

    // The loops below go through `Normalization.forEachElement` (row-major: each set's elements in order).

    /// Forward in `format`; `running` (means, variances) for BatchNorm in eval mode.
    static func forward(spec: LayerSpec, plan: NormPlan, x: [Double], gamma: [Double]?, beta: [Double]?,
                        running: (means: [Double], variances: [Double])?, format a: DType) -> Forward {
        let count = plan.statsShape.count
        let m = plan.setSize
        let divisor = Double(spec.variance == .unbiased ? m - 1 : m)
        var means = [Double](repeating: 0, count: count)
        var variances = [Double](repeating: 0, count: count)
        var unbiased: [Double]? = nil
        var overflowedSquare = [Bool](repeating: false, count: count)
        var overflowedSum = [Bool](repeating: false, count: count)
        let xs = x.map(a.round)

        if let running {
            means = running.means.map(a.round)
            variances = running.variances.map(a.round)
        } else {
            var sums = [Double](repeating: 0, count: count)
            var squares = [Double](repeating: 0, count: count)
            func square(_ v: Double, _ stat: Int) -> Double {
                let s = a.round(v * v)
                if s.isInfinite && v.isFinite { overflowedSquare[stat] = true }
                return s
            }
            func add(_ total: inout Double, _ v: Double, _ stat: Int) {
                let before = total
                total = a.round(total + v)
                if total.isInfinite && before.isFinite && v.isFinite { overflowedSum[stat] = true }
            }
            let centre = spec.centres
            switch spec.method {
            case .twopass:
                if centre {
                    Normalization.forEachElement(plan) { offset, stat in add(&sums[stat], xs[offset], stat) }
                    for i in 0..<count { means[i] = a.round(sums[i] / Double(m)) }
                }
                Normalization.forEachElement(plan) { offset, stat in
                    let d = centre ? a.round(xs[offset] - means[stat]) : xs[offset]
                    add(&squares[stat], square(d, stat), stat)
                }
                variances = squares.map { a.round($0 / divisor) }
                if spec.kind.hasRunningStatistics || spec.variance == .unbiased { unbiased = squares.map { a.round($0 / Double(m - 1)) } }
            case .onepass:
                Normalization.forEachElement(plan) { offset, stat in
                    add(&sums[stat], xs[offset], stat)
                    add(&squares[stat], square(xs[offset], stat), stat)
                }
                for i in 0..<count {
                    let meanSquare = a.round(squares[i] / Double(m))
                    if centre {
                        means[i] = a.round(sums[i] / Double(m))
                        variances[i] = a.round(meanSquare - a.round(means[i] * means[i]))
                    } else {
                        variances[i] = meanSquare
                    }
                }
                if spec.kind.hasRunningStatistics || spec.variance == .unbiased {
                    unbiased = variances.map { a.round($0 * a.round(Double(m) / Double(m - 1))) }
                }
                if spec.variance == .unbiased, let unbiased { variances = unbiased }
            case .welford:
                var seen = [Double](repeating: 0, count: count)
                Normalization.forEachElement(plan) { offset, stat in
                    let v = xs[offset]
                    seen[stat] += 1
                    if centre {
                        let delta = a.round(v - means[stat])
                        means[stat] = a.round(means[stat] + a.round(delta / seen[stat]))
                        add(&squares[stat], a.round(delta * a.round(v - means[stat])), stat)
                    } else {
                        add(&squares[stat], square(v, stat), stat)
                    }
                }
                variances = squares.map { a.round($0 / divisor) }
                if spec.kind.hasRunningStatistics || spec.variance == .unbiased { unbiased = squares.map { a.round($0 / Double(m - 1)) } }
            }
        }

        let eps = a.round(spec.eps)
        let rstds = variances.map { a.round(1 / a.round(a.round($0 + eps).squareRoot())) }
        var normalized = [Double](repeating: 0, count: x.count)
        var output = [Double](repeating: 0, count: x.count)
        let gammaA = gamma?.map(a.round), betaA = beta?.map(a.round)
        let element = spec.affine == .element
        forEachElement(plan) { offset, stat, channel, position in
            let centred = spec.centres ? a.round(xs[offset] - means[stat]) : xs[offset]
            let h = a.round(centred * rstds[stat])
            normalized[offset] = h
            let p = element ? channel * plan.spatial + position : channel
            let scaled = gammaA.map { a.round(h * $0[p]) } ?? h
            output[offset] = betaA.map { a.round(scaled + $0[p]) } ?? scaled
        }

        var findings: [NormWarning] = []
        let squareSets = overflowedSquare.filter { $0 }.count, sumSets = overflowedSum.filter { $0 }.count
        if squareSets > 0 { findings.append(.overflow(quantity: "x²", sets: squareSets, format: a)) }
        else if sumSets > 0 { findings.append(.overflow(quantity: "a sum", sets: sumSets, format: a)) }
        // A rounding below 1 % changes nothing a user would see; to 0 (or far off) it changes everything.
        if eps != spec.eps && (eps == 0 || abs(eps - spec.eps) > 0.01 * spec.eps) {
            findings.append(.epsRounded(eps: spec.eps, to: eps, format: a))
        }
        return Forward(means: means, variances: variances, unbiased: unbiased, rstds: rstds, normalized: normalized,
                       output: output, findings: findings,
                       overflowed: zip(overflowedSquare, overflowedSum).map { $0 || $1 })
    }

    /// dx and dγ, dβ summed over the batch, in `format`, for the statistics the emulated forward produced.
    static func backward(spec: LayerSpec, plan: NormPlan, x: [Double], dy: [Double], means: [Double], rstds: [Double],
                         gamma: [Double]?, constantStatistics: Bool, format a: DType)
        -> (dx: [Double], dgamma: [Double], dbeta: [Double]) {
        let count = plan.statsShape.count
        let m = Double(plan.setSize)
        let divisor = spec.variance == .unbiased ? m - 1 : m
        let element = spec.affine == .element
        let gammaA = gamma?.map(a.round)
        let xs = x.map(a.round), g = dy.map(a.round)
        var normalized = [Double](repeating: 0, count: x.count)
        var scaledGradient = [Double](repeating: 0, count: x.count)
        var sumG = [Double](repeating: 0, count: count), sumGH = [Double](repeating: 0, count: count)
        let paramCount = plan.affineShape?.count ?? 0
        var dgamma = [Double](repeating: 0, count: paramCount), dbeta = [Double](repeating: 0, count: paramCount)
        forEachElement(plan) { offset, stat, channel, position in
            let centred = spec.centres ? a.round(xs[offset] - means[stat]) : xs[offset]
            let h = a.round(centred * rstds[stat])
            let p = element ? channel * plan.spatial + position : channel
            let dh = gammaA.map { a.round(g[offset] * $0[p]) } ?? g[offset]
            normalized[offset] = h
            scaledGradient[offset] = dh
            sumG[stat] = a.round(sumG[stat] + dh)
            sumGH[stat] = a.round(sumGH[stat] + a.round(dh * h))
            if paramCount > 0 {
                dgamma[p] = a.round(dgamma[p] + a.round(g[offset] * h))
                dbeta[p] = a.round(dbeta[p] + g[offset])
            }
        }
        let meanTerms = sumG.map { spec.centres ? a.round($0 / m) : 0 }
        let projections = sumGH.map { a.round($0 / divisor) }
        var dx = [Double](repeating: 0, count: x.count)
        Normalization.forEachElement(plan) { offset, stat in
            let dh = scaledGradient[offset]
            if constantStatistics {
                dx[offset] = a.round(rstds[stat] * dh)
            } else {
                let inner = a.round(a.round(dh - meanTerms[stat]) - a.round(normalized[offset] * projections[stat]))
                dx[offset] = a.round(rstds[stat] * inner)
            }
        }
        return (dx, dgamma, dbeta)
    }

    /// Row-major over (n, c, s) with each element's statistics set, channel and position.
    @inline(__always)
    static func forEachElement(_ plan: NormPlan, _ body: (_ offset: Int, _ stat: Int, _ channel: Int, _ position: Int) -> Void) {
        for n in 0..<plan.batch {
            for c in 0..<plan.channels {
                let start = (n * plan.channels + c) * plan.spatial
                for s in 0..<plan.spatial {
                    body(start + s, plan.statIndex(sample: n, channel: c, position: s), c, s)
                }
            }
        }
    }
}
