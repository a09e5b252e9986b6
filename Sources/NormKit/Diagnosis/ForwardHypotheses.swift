#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Mistakes in a forward pass, each recomputed in Float64 with the user's own γ and β and the backward that is
/// right for it, tried in turn against the user's y. The first that reproduces y within the rounding estimate
/// is the cause.
struct ForwardHypotheses {
    let reference: DiagnosisPass
    let judge: Judge

    struct Found {
        let cause: DiagnosisCause
        /// The hypothesis's y, dx, dγ, dβ: what a correct backward of that forward gives.
        let values: PassValues
        let fitted: Double?
    }

    func explain(_ y: [Double]) -> Found? {
        let spec = reference.spec
        let plan = reference.plan
        var tries: [() -> Found?] = []
        if plan.spatial > 1 && (spec.kind.hasGroups ? plan.channelsPerGroup > 1 : plan.batch > 1) {
            tries.append { variant(.perPositionStatistics) { $0.reduce = spec.reduce == .group ? .channels : .group } }
        }
        if spec.kind.hasGroups && plan.groups > 1 && plan.channelsPerGroup > 1 {
            tries.append { interleaved() }
        }
        // BatchNorm with the batch axis left out of its statistics: the same sets within each sample (GroupNorm
        // with the layer's groups — InstanceNorm for BatchNorm per channel), where those hold more than one element.
        if spec.kind.statisticsSpanBatch && plan.batch > 1 && plan.setSize / plan.batch > 1 {
            tries.append {
                variant(.perSampleStatistics) {
                    $0.kind = .groupnorm
                    $0.groups = plan.groups
                }
            }
        }
        if spec.centres && plan.setSize > 1 {
            tries.append { variant(.unbiasedVariance) { $0.variance = spec.variance == .biased ? .unbiased : .biased } }
            tries.append { epsOutsideSqrt() }
        }
        tries.append { otherPreset() }
        tries.append { epsValue(y) }
        if judge.lowPrecision && spec.centres {
            tries.append { cancellation(y, u: judge.accumulation.unitRoundoff) }
        }
        for attempt in tries {
            if let found = attempt(), judge.against(found.values).agrees(y) { return found }
        }
        return lowPrecision(y)
    }

    /// What a kernel summing in the storage format itself does (float16, bfloat16; judged with that format's
    /// accumulation error): squares past 65504, an eps that rounds to 0, a one-pass variance that cancels, or
    /// only the digits such sums lose. Overflow and eps are recomputed with `EmulatedKernels`: the NaN and ∞
    /// they make do not depend on the order of the sums.
    private func lowPrecision(_ y: [Double]) -> Found? {
        let format = judge.format
        guard format.isReduced else { return nil }
        let loose = judge.accumulating(in: format)
        let r = reference
        for method in [VarianceMethod.twopass, .onepass] {
            var spec = r.spec
            spec.method = method
            spec.accumulate = .storage
            let pass = EmulatedKernels.forward(spec: spec, plan: r.plan, x: r.x, gamma: r.gamma, beta: r.beta,
                                               running: nil, format: format)
            let cause: DiagnosisCause
            if pass.findings.contains(where: { if case .overflow = $0 { true } else { false } }) {
                cause = .float16Overflow
            } else if pass.findings.contains(where: { if case .epsRounded(_, 0, _) = $0 { true } else { false } }) {
                cause = .epsUnderflow
            } else {
                continue
            }
            let (t1, t2, t3) = r.terms(r.dxhat(), xhat: pass.normalized, rstd: pass.rstds)
            let values = PassValues(y: pass.output.map(format.round), dx: (0..<r.count).map { t1[$0] + t2[$0] + t3[$0] },
                                    dgamma: r.parameterGradient(pass.normalized), dbeta: r.parameterGradient(nil))
            if loose.against(values).agrees(y) { return Found(cause: cause, values: values, fitted: nil) }
        }
        if r.spec.centres, let found = cancellation(y, u: format.unitRoundoff), loose.against(found.values).agrees(y),
           !loose.agrees(y) {
            return found
        }
        if loose.agrees(y) { return Found(cause: .lowPrecisionAccumulation, values: r.values, fitted: nil) }
        return nil
    }

    private func pass(_ spec: LayerSpec, x: [Double]? = nil, gamma: [Double]?? = nil, beta: [Double]?? = nil, dy: [Double]? = nil) -> DiagnosisPass? {
        try? DiagnosisPass(spec: spec, shape: reference.plan.inputShape, x: x ?? reference.x, gamma: gamma ?? reference.gamma,
                           beta: beta ?? reference.beta, dy: dy ?? reference.dy)
    }

    /// The same layer with one convention changed.
    private func variant(_ cause: DiagnosisCause, _ change: (inout LayerSpec) -> Void) -> Found? {
        var spec = reference.spec
        change(&spec)
        return pass(spec).map { Found(cause: cause, values: $0.values, fitted: nil) }
    }

    /// The other preset's conventions, with the user's γ and β carried over (channel-wise values spread over
    /// the positions for element-wise ones; element-wise ones kept only when they are the same at every position).
    private func otherPreset() -> Found? {
        let r = reference
        var spec = r.spec
        spec.apply(r.spec.preset == .torch ? .pydllib : .torch)
        spec.groups = r.spec.groups
        guard spec != r.spec, let plan = try? NormPlan(spec: spec, inputShape: r.plan.inputShape) else { return nil }
        func convert(_ v: [Double]?) -> [Double]?? {
            guard let v else { return .some(nil) }
            let s = r.plan.spatial, c = r.plan.channels
            switch (r.spec.affine, spec.affine) {
            case (let a, let b) where a == b: return .some(v)
            case (.channel, .element): return .some((0..<(c * s)).map { v[$0 / s] })
            case (.element, .channel):
                let perChannel = (0..<c).map { v[$0 * s] }
                guard (0..<(c * s)).allSatisfy({ v[$0] == perChannel[$0 / s] }) else { return nil }
                return .some(perChannel)
            default: return nil
            }
        }
        guard plan.affineShape != nil || r.plan.affineShape == nil, let g = convert(r.gamma), let b = convert(r.beta),
              let p = pass(spec, gamma: .some(g), beta: .some(b)) else { return nil }
        // dγ, dβ in the layer's shape and batch reduction, from the other preset's x̂.
        var values = p.values
        values.dgamma = r.parameterGradient(p.xhat)
        values.dbeta = r.parameterGradient(nil)
        return Found(cause: .otherPreset, values: values, fitted: nil)
    }

    /// Channel c in group c mod G (a reshape to (N, C/G, G, …) instead of (N, G, C/G, …)): the channels
    /// permuted so that those groups are contiguous, the layer run, and the results permuted back.
    private func interleaved() -> Found? {
        let plan = reference.plan
        let g = plan.groups, k = plan.channelsPerGroup, s = plan.spatial
        // New channel j holds old channel order[j]: the channels of group c mod G, in order.
        let order = (0..<g).flatMap { group in (0..<k).map { $0 * g + group } }
        func permuteElements(_ v: [Double], inverse: Bool) -> [Double] {
            var out = v
            for n in 0..<plan.batch {
                for (j, c) in order.enumerated() {
                    let (to, from) = inverse ? (c, j) : (j, c)
                    for p in 0..<s { out[(n * plan.channels + to) * s + p] = v[(n * plan.channels + from) * s + p] }
                }
            }
            return out
        }
        func permuteParameters(_ v: [Double]?, inverse: Bool) -> [Double]? {
            guard var out = v else { return nil }
            let width = reference.spec.affine == .element ? s : 1
            for (j, c) in order.enumerated() {
                let (to, from) = inverse ? (c, j) : (j, c)
                for p in 0..<width { out[to * width + p] = v![from * width + p] }
            }
            return out
        }
        guard let permuted = pass(reference.spec, x: permuteElements(reference.x, inverse: false),
                                  gamma: .some(permuteParameters(reference.gamma, inverse: false)),
                                  beta: .some(permuteParameters(reference.beta, inverse: false)),
                                  dy: permuteElements(reference.dy, inverse: false)) else { return nil }
        let values = PassValues(y: permuteElements(permuted.y, inverse: true), dx: permuteElements(permuted.dx, inverse: true),
                                dgamma: permuteParameters(permuted.dgamma, inverse: true),
                                dbeta: permuteParameters(permuted.dbeta, inverse: true))
        return Found(cause: .interleavedGroups, values: values, fitted: nil)
    }

    /// x̂ = (x − μ)/(σ + eps), and its exact backward: dx = (∂x̂ − mean ∂x̂)/(σ + eps) − x̂·Σ(∂x̂·x̂)/(d·σ).
    private func epsOutsideSqrt() -> Found? {
        let r = reference
        let eps = r.spec.eps
        var h = [Double](repeating: 0, count: r.count), dx = h
        let g = r.dxhat()
        for (k, members) in r.sets.enumerated() {
            let variance = 1 / (r.rstd[k] * r.rstd[k]) - eps
            let sigma = max(variance, 0).squareRoot()
            guard sigma > 0 else { return nil }
            let scale = sigma + eps
            for i in members { h[i] = (r.x[i] - r.mean[k]) / scale }
            var sumG = 0.0, sumGH = 0.0
            for i in members { sumG += g[i]; sumGH += g[i] * h[i] }
            for i in members { dx[i] = (g[i] - sumG / r.m) / scale - h[i] * sumGH / (r.divisor * sigma) }
        }
        return Found(cause: .epsOutsideSqrt, values: PassValues(y: r.output(h), dx: dx, dgamma: r.parameterGradient(h),
                                                                dbeta: r.parameterGradient(nil)), fitted: nil)
    }

    /// Another eps: the value that fits y best, read from x̂ = (y − β)/γ, preferring a round power of ten.
    private func epsValue(_ y: [Double]) -> Found? {
        let r = reference
        let gammaScale = (0..<r.count).map { abs(r.gammaAt($0)) }.max() ?? 1
        var estimates: [Double] = []
        for (k, members) in r.sets.enumerated() {
            let variance = 1 / (r.rstd[k] * r.rstd[k]) - r.spec.eps
            for i in members {
                let gamma = r.gammaAt(i)
                guard abs(gamma) > 1e-3 * gammaScale else { continue }
                let h = (y[i] - r.betaAt(i)) / gamma
                let centred = r.x[i] - r.mean[k]
                guard abs(h) > 0.1, abs(centred) > 0 else { continue }
                let rstd = h / centred
                guard rstd > 0 else { continue }
                estimates.append(1 / (rstd * rstd) - variance)
            }
        }
        guard !estimates.isEmpty else { return nil }
        let fitted = estimates.sorted()[estimates.count / 2]
        let powers = (-12...0).map { pow(10, Double($0)) } + [0]
        let candidates = powers.sorted { abs($0 - fitted) < abs($1 - fitted) }.prefix(3) + (fitted >= 0 ? [fitted] : [])
        for eps in candidates where eps != r.spec.eps && eps >= 0 {
            var spec = r.spec
            spec.eps = eps
            guard let p = pass(spec), judge.against(p.values).agrees(y) else { continue }
            return Found(cause: .epsValue, values: p.values, fitted: eps)
        }
        return nil
    }

    /// E[x²] − E[x]² with unit roundoff u (float32, or the storage format's): per set, y is γ·(s·x̂ + t) + β for a
    /// scale s and shift t (statistics off, the normalisation itself right), and the variance they imply is off by
    /// no more than the cancellation of a one-pass variance can make it: about u·log₂(m)·(μ² + σ²).
    private func cancellation(_ y: [Double], u: Double) -> Found? {
        let r = reference
        let gammaScale = (0..<r.count).map { abs(r.gammaAt($0)) }.max() ?? 1
        var h = r.xhat
        var rstdImplied = r.rstd
        var anyBeyondTwoPass = false
        for (k, members) in r.sets.enumerated() {
            let usable = members.filter { abs(r.gammaAt($0)) > 1e-3 * gammaScale }
            guard usable.count >= 2 else { return nil }
            // Least squares of x̂_user = s·x̂ + t over the set.
            let target = usable.map { (y[$0] - r.betaAt($0)) / r.gammaAt($0) }
            let source = usable.map { r.xhat[$0] }
            let n = Double(usable.count)
            let meanS = source.reduce(0, +) / n, meanT = target.reduce(0, +) / n
            var sxx = 0.0, sxy = 0.0
            for j in usable.indices { sxx += (source[j] - meanS) * (source[j] - meanS); sxy += (source[j] - meanS) * (target[j] - meanT) }
            guard sxx > 0 else { return nil }
            let s = sxy / sxx, t = meanT - s * meanS
            guard s > 0 else { return nil }
            let variance = 1 / (r.rstd[k] * r.rstd[k]) - r.spec.eps
            rstdImplied[k] = s * r.rstd[k]
            let impliedVariance = 1 / (rstdImplied[k] * rstdImplied[k]) - r.spec.eps
            let mu = r.mean[k]
            let bound = 8 * u * (1 + log2(r.m)) * (mu * mu + variance)
            guard abs(impliedVariance - variance) <= bound else { return nil }
            if abs(impliedVariance - variance) > 64 * u * variance * (1 + abs(mu) * r.rstd[k]) { anyBeyondTwoPass = true }
            for i in members { h[i] = s * r.xhat[i] + t }
        }
        guard anyBeyondTwoPass else { return nil }
        // The closed form with the user's own x̂ and rstd: what a correct backward of their forward gives.
        let (t1, t2, t3) = r.terms(r.dxhat(), xhat: h, rstd: rstdImplied)
        let dx = (0..<r.count).map { t1[$0] + t2[$0] + t3[$0] }
        return Found(cause: .onepassCancellation, values: PassValues(y: r.output(h), dx: dx, dgamma: r.parameterGradient(h),
                                                                     dbeta: r.parameterGradient(nil)), fitted: nil)
    }
}
