/// Something a user should know about a result that is not an error: the numbers are what the convention
/// defines, but probably not what the user meant.
public enum NormWarning: Sendable, Equatable, CustomStringConvertible {
    /// Every statistics set holds one element, so x − μ = 0 everywhere: y = β and dx = 0.
    /// PyDLLib's InstanceNorm really does this (its per-position statistics over C/G = 1 channel).
    case singleElementSets(layer: String)
    /// eps = 0 and some sets have zero variance: rstd = 1/0 = ∞ and x̂ = 0·∞ = NaN there.
    case zeroVarianceWithZeroEps(sets: Int)
    /// Some inputs were NaN or ±Inf; they propagate through the statistics of their sets.
    case nonFiniteInput(count: Int)

    public var description: String {
        switch self {
        case .singleElementSets(let layer):
            "every statistics set of this \(layer) holds a single element, so x − μ = 0: y = β and dx = 0 everywhere"
        case .zeroVarianceWithZeroEps(let sets):
            "eps = 0 and \(sets) statistics set\(sets == 1 ? " has" : "s have") zero variance: rstd = 1/√0 = ∞ and x̂ = 0·∞ = NaN there; use eps > 0"
        case .nonFiniteInput(let count):
            "the input holds \(count) NaN or infinite value\(count == 1 ? "" : "s"); they make their sets' statistics NaN"
        }
    }
}

/// Everything a forward pass computed, kept so a learner can look at it and backward can use it.
public struct ForwardResult<Scalar: NormScalar>: Sendable {
    public let spec: LayerSpec
    public let plan: NormPlan
    public let mode: Mode
    public let input: Tensor<Scalar>
    /// y = γ·x̂ + β.
    public let output: Tensor<Scalar>
    /// x̂ = (x − μ)·rstd (RMSNorm: x·rstd). The fast kernels do not store it (it would add a tensor's worth of
    /// memory traffic to every pass); it is then recomputed here, with the forward pass's own operations.
    public var normalized: Tensor<Scalar> {
        if let storedNormalized { return storedNormalized }
        let values = [Scalar](unsafeUninitializedCapacity: input.count) { xhat, count in
            input.scalars.withUnsafeBufferPointer { x in
                FastKernels.normalized(spec: spec, plan: plan, x: x, means: exactMeans, rstds: exactRstds, into: xhat,
                                       threads: 1)
            }
            count = input.count
        }
        return Tensor(uncheckedShape: input.shape, scalars: values)
    }
    /// μ per statistics set (`plan.statsShape`); nil for RMSNorm, which does not centre. In BatchNorm's eval mode,
    /// the running mean.
    public let mean: Tensor<Scalar>?
    /// The variance that normalised x (biased unless the spec says unbiased); RMSNorm: the mean of x².
    /// In BatchNorm's eval mode, the running variance.
    public let variance: Tensor<Scalar>
    /// rstd = (variance + eps)^(−1/2).
    public let rstd: Tensor<Scalar>
    /// BatchNorm in training: the unbiased batch variance that feeds the running estimate.
    public let unbiasedVariance: Tensor<Scalar>?
    public let warnings: [NormWarning]
    /// μ and rstd as the engine used them (Float64, before rounding to the element type).
    let exactMeans: [Double]
    let exactRstds: [Double]
    /// x̂ when the pass stored it (the general path and the per-position kernels); nil when `normalized` recomputes it.
    let storedNormalized: Tensor<Scalar>?

    /// x − μ, computed on demand (RMSNorm: x itself).
    public var centered: Tensor<Scalar> {
        guard mean != nil else { return input }
        var values = input.scalars
        let means = exactMeans
        let plan = plan
        values.withUnsafeMutableBufferPointer { x in
            for n in 0..<plan.batch {
                for c in 0..<plan.channels {
                    let start = (n * plan.channels + c) * plan.spatial
                    for s in 0..<plan.spatial {
                        let mu = means[plan.statIndex(sample: n, channel: c, position: s)]
                        x[start + s] = Scalar(fromDouble: x[start + s].asDouble - mu)
                    }
                }
            }
        }
        return Tensor(uncheckedShape: input.shape, scalars: values)
    }
}

/// The gradients one backward pass produced (before any accumulation).
public struct Gradients<Scalar: NormScalar>: Sendable {
    public let dx: Tensor<Scalar>
    /// Reduced over the batch as `spec.paramGrad` says; nil for affine=none.
    public let dgamma: Tensor<Scalar>?
    public let dbeta: Tensor<Scalar>?
}

/// The forward and backward passes, as pure functions of their inputs. `NormLayer` adds the state (locked shape,
/// parameters, running statistics, accumulated gradients) around them.
///
/// Statistics are two-pass with Float64 accumulation for both element types, so 1e6 + small noise in Float32 gets
/// the right variance; a set whose elements are all equal gets exactly μ = that value, var = 0 and x̂ = 0.
public enum Normalization {
    /// Normalise `input`. In BatchNorm's eval mode the statistics are `running` (mean, variance); everywhere else
    /// they come from the input.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public static func forward<Scalar: NormScalar>(
        spec: LayerSpec,
        input: Tensor<Scalar>,
        gamma: Tensor<Scalar>?,
        beta: Tensor<Scalar>?,
        mode: Mode = .train,
        running: (mean: Tensor<Scalar>, variance: Tensor<Scalar>)? = nil,
        threads: Int = 1
    ) throws(NormError) -> ForwardResult<Scalar> {
        try computeForward(spec: spec, input: input, gamma: gamma, beta: beta, mode: mode, running: running,
                           threads: threads, allowFastPath: true)
    }

    /// `allowFastPath: false` runs the general per-element path, the reference the fast kernels are tested against.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    static func computeForward<Scalar: NormScalar>(
        spec: LayerSpec, input: Tensor<Scalar>, gamma: Tensor<Scalar>?, beta: Tensor<Scalar>?, mode: Mode,
        running: (mean: Tensor<Scalar>, variance: Tensor<Scalar>)?, threads: Int, allowFastPath: Bool
    ) throws(NormError) -> ForwardResult<Scalar> {
        try spec.validate()
        let plan = try NormPlan(spec: spec, inputShape: input.shape)
        try checkAffine(gamma, name: "gamma", plan: plan, spec: spec)
        try checkAffine(beta, name: "beta", plan: plan, spec: spec)
        let usesRunning = spec.kind.hasRunningStatistics && mode == .eval
        let m = plan.setSize
        let statsCount = plan.statsShape.count

        if !usesRunning {
            if spec.kind.hasRunningStatistics && m < 2 {  // the running variance needs m − 1 > 0
                throw NormError.mismatch(spec.reduce == .channels
                    ? "BatchNorm over the batch axis needs a batch of at least 2 in training; got N = \(plan.batch)"
                    : "BatchNorm needs more than 1 value per channel when training; got input \(input.shape)")
            }
            if spec.variance == .unbiased && m < 2 {
                throw NormError.mismatch("the unbiased variance divides by m − 1 = 0: each statistics set has a single element (input \(input.shape))")
            }
        }

        func countNonFinite() -> Int {
            input.scalars.withUnsafeBufferPointer { x in x.reduce(0) { $0 + ($1.isFinite ? 0 : 1) } }
        }

        let positionPath = PositionKernels.applies(spec)
        if allowFastPath && !usesRunning && (FastKernels.applies(spec, plan) || positionPath) {
            let gammaValues = gamma?.scalars.map(\.asDouble)
            let betaValues = beta?.scalars.map(\.asDouble)
            var stats: FastKernels.Statistics? = nil
            var normalized: [Scalar]? = nil
            // The kernels write every element: no need to zero the buffers first.
            let output = [Scalar](unsafeUninitializedCapacity: input.count) { y, yCount in
                input.scalars.withUnsafeBufferPointer { x in
                    if positionPath {
                        normalized = [Scalar](unsafeUninitializedCapacity: input.count) { h, hCount in
                            stats = PositionKernels.forward(spec: spec, plan: plan, x: x, gamma: gammaValues,
                                                            beta: betaValues, xhat: h, y: y, threads: threads)
                            hCount = input.count
                        }
                    } else {
                        stats = FastKernels.forward(spec: spec, plan: plan, x: x, gamma: gammaValues, beta: betaValues,
                                                    y: y, threads: threads)
                    }
                }
                yCount = input.count
            }
            guard let stats else { throw NormError.state("internal: the fast kernel produced no statistics") }
            var warnings: [NormWarning] = []
            if m == 1 && spec.centres { warnings.append(.singleElementSets(layer: spec.kind.displayName)) }
            if spec.eps == 0 {
                let zeroSets = stats.variances.filter { $0 == 0 }.count
                if zeroSets > 0 { warnings.append(.zeroVarianceWithZeroEps(sets: zeroSets)) }
            }
            if stats.means.contains(where: { !$0.isFinite }) || stats.variances.contains(where: { !$0.isFinite }) {
                let count = countNonFinite()
                if count > 0 { warnings.append(.nonFiniteInput(count: count)) }
            }
            func tensor(_ values: [Double]) -> Tensor<Scalar> {
                Tensor(uncheckedShape: plan.statsShape, scalars: values.map { Scalar(fromDouble: $0) })
            }
            return ForwardResult(
                spec: spec, plan: plan, mode: .train, input: input,
                output: Tensor(uncheckedShape: input.shape, scalars: output),
                mean: spec.centres ? tensor(stats.means) : nil, variance: tensor(stats.variances),
                rstd: tensor(stats.rstds),
                unbiasedVariance: spec.kind.hasRunningStatistics ? tensor(stats.sumSquares.map { $0 / Double(m - 1) }) : nil,
                warnings: warnings, exactMeans: stats.means, exactRstds: stats.rstds,
                storedNormalized: normalized.map { Tensor(uncheckedShape: input.shape, scalars: $0) })
        }
        let nonFinite = countNonFinite()
        var means = [Double](repeating: 0, count: statsCount)
        var variances = [Double](repeating: 0, count: statsCount)
        var unbiased: [Double]? = nil

        if usesRunning {
            guard let running else {
                throw NormError.state("BatchNorm in eval mode needs running statistics")
            }
            guard running.mean.shape == plan.statsShape, running.variance.shape == plan.statsShape else {
                throw NormError.mismatch("running statistics have shape \(running.mean.shape) but this input needs \(plan.statsShape)")
            }
            means = running.mean.scalars.map(\.asDouble)
            variances = running.variance.scalars.map(\.asDouble)
        } else {
            let (mu, sumSquares) = Self.statistics(of: input, plan: plan, centre: spec.centres)
            means = mu
            let divisor = Double(spec.variance == .unbiased ? m - 1 : m)
            variances = sumSquares.map { $0 / divisor }
            if spec.kind.hasRunningStatistics {
                unbiased = sumSquares.map { $0 / Double(m - 1) }
            }
        }
        let rstds = variances.map { 1 / ($0 + spec.eps).squareRoot() }

        var normalized = [Scalar](repeating: 0, count: input.count)
        var output = [Scalar](repeating: 0, count: input.count)
        let gammaValues = gamma?.scalars.map(\.asDouble)
        let betaValues = beta?.scalars.map(\.asDouble)
        let centre = spec.centres
        let affineIsElement = spec.affine == .element
        input.scalars.withUnsafeBufferPointer { x in
            normalized.withUnsafeMutableBufferPointer { xhat in
                output.withUnsafeMutableBufferPointer { y in
                    for n in 0..<plan.batch {
                        for c in 0..<plan.channels {
                            let start = (n * plan.channels + c) * plan.spatial
                            for s in 0..<plan.spatial {
                                let stat = plan.statIndex(sample: n, channel: c, position: s)
                                let centred = centre ? x[start + s].asDouble - means[stat] : x[start + s].asDouble
                                let h = centred * rstds[stat]
                                let p = affineIsElement ? c * plan.spatial + s : c
                                let g = gammaValues?[p] ?? 1
                                let b = betaValues?[p] ?? 0
                                xhat[start + s] = Scalar(fromDouble: h)
                                y[start + s] = Scalar(fromDouble: g * h + b)
                            }
                        }
                    }
                }
            }
        }

        var warnings: [NormWarning] = []
        if m == 1 && centre && !usesRunning {
            warnings.append(.singleElementSets(layer: spec.kind.displayName))
        }
        if spec.eps == 0 {
            let zeroSets = variances.filter { $0 == 0 }.count
            if zeroSets > 0 { warnings.append(.zeroVarianceWithZeroEps(sets: zeroSets)) }
        }
        if nonFinite > 0 { warnings.append(.nonFiniteInput(count: nonFinite)) }

        func stats(_ values: [Double]) -> Tensor<Scalar> {
            Tensor(uncheckedShape: plan.statsShape, scalars: values.map { Scalar(fromDouble: $0) })
        }
        return ForwardResult(
            spec: spec, plan: plan, mode: usesRunning ? .eval : .train, input: input,
            output: Tensor(uncheckedShape: input.shape, scalars: output),
            mean: centre ? stats(means) : nil,
            variance: stats(variances),
            rstd: stats(rstds),
            unbiasedVariance: unbiased.map(stats),
            warnings: warnings,
            exactMeans: means,
            exactRstds: rstds,
            storedNormalized: Tensor(uncheckedShape: input.shape, scalars: normalized))
    }

    /// Per statistics set: the mean (zero when not centring) and Σ(x − μ)². Two passes, Float64 accumulators.
    static func statistics<Scalar: NormScalar>(
        of input: Tensor<Scalar>, plan: NormPlan, centre: Bool
    ) -> (means: [Double], sumSquares: [Double]) {
        let count = plan.statsShape.count
        var sums = [Double](repeating: 0, count: count)
        var lows = [Double](repeating: .infinity, count: count)
        var highs = [Double](repeating: -.infinity, count: count)
        var squares = [Double](repeating: 0, count: count)
        var means = [Double](repeating: 0, count: count)
        input.scalars.withUnsafeBufferPointer { x in
            if centre {
                forEachElement(plan) { offset, stat in
                    let v = x[offset].asDouble
                    sums[stat] += v
                    lows[stat] = min(lows[stat], v)
                    highs[stat] = max(highs[stat], v)
                }
                let m = Double(plan.setSize)
                for i in 0..<count {
                    // A constant set gets its value exactly, so x − μ is exactly 0 there (sum/m may round).
                    means[i] = lows[i] == highs[i] ? lows[i] : sums[i] / m
                }
            }
            forEachElement(plan) { offset, stat in
                let d = x[offset].asDouble - means[stat]
                squares[stat] += d * d
            }
        }
        return (means, squares)
    }

    @inline(__always)
    static func forEachElement(_ plan: NormPlan, _ body: (_ offset: Int, _ stat: Int) -> Void) {
        for n in 0..<plan.batch {
            for c in 0..<plan.channels {
                let start = (n * plan.channels + c) * plan.spatial
                for s in 0..<plan.spatial {
                    body(start + s, plan.statIndex(sample: n, channel: c, position: s))
                }
            }
        }
    }

    static func checkAffine<Scalar: NormScalar>(
        _ parameter: Tensor<Scalar>?, name: String, plan: NormPlan, spec: LayerSpec
    ) throws(NormError) {
        guard let parameter else { return }
        guard let expected = plan.affineShape else {
            throw NormError.mismatch("this layer has affine=none, so it takes no \(name)")
        }
        guard parameter.shape == expected else {
            let what = spec.affine == .channel ? "one value per channel" : "one value per element of a sample (C, *spatial)"
            throw NormError.mismatch("\(name) has shape \(parameter.shape) but affine=\(spec.affine) needs \(what): \(expected)")
        }
    }

    /// The gradients of Σ dy·y for the pass `forward`. With dx̂ = dy·γ, in a training pass:
    ///
    ///     dx = rstd · (dx̂ − Σdx̂ / m − x̂ · Σ(dx̂·x̂) / d)
    ///
    /// where the sums run over the statistics set, d = m for the biased variance and m − 1 for the unbiased one,
    /// and RMSNorm has no Σdx̂ term; in BatchNorm's eval mode the statistics are constants and dx = rstd · dx̂.
    /// dγ = Σ dy·x̂ and dβ = Σ dy over the batch (and, for affine=channel, the positions), divided by N under
    /// paramgrad=mean.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public static func backward<Scalar: NormScalar>(
        forward: ForwardResult<Scalar>,
        gamma: Tensor<Scalar>?,
        outputGradient dy: Tensor<Scalar>,
        threads: Int = 1
    ) throws(NormError) -> Gradients<Scalar> {
        try computeBackward(forward: forward, gamma: gamma, outputGradient: dy, threads: threads, allowFastPath: true)
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    static func computeBackward<Scalar: NormScalar>(
        forward: ForwardResult<Scalar>, gamma: Tensor<Scalar>?, outputGradient dy: Tensor<Scalar>, threads: Int,
        allowFastPath: Bool
    ) throws(NormError) -> Gradients<Scalar> {
        let plan = forward.plan
        let spec = forward.spec
        guard dy.shape == forward.output.shape else {
            throw NormError.mismatch("dy has shape \(dy.shape) but y has shape \(forward.output.shape); they must match")
        }
        try checkAffine(gamma, name: "gamma", plan: plan, spec: spec)
        let statsCount = plan.statsShape.count
        let m = Double(plan.setSize)
        let divisor = spec.variance == .unbiased ? m - 1 : m
        let gammaValues = gamma?.scalars.map(\.asDouble)
        let affineIsElement = spec.affine == .element
        let constantStats = spec.kind.hasRunningStatistics && forward.mode == .eval
        let centre = spec.centres

        let positionPath = PositionKernels.applies(spec)
        if allowFastPath && (FastKernels.applies(spec, plan) || positionPath) && forward.mode == .train {
            let paramCount = plan.affineShape?.count ?? 0
            var dgamma = [Double](repeating: 0, count: paramCount)
            var dbeta = [Double](repeating: 0, count: paramCount)
            let dx = [Scalar](unsafeUninitializedCapacity: dy.count) { out, count in
                dy.scalars.withUnsafeBufferPointer { g in
                    if positionPath {
                        forward.normalized.scalars.withUnsafeBufferPointer { h in
                            PositionKernels.backward(spec: spec, plan: plan, dy: g, xhat: h, rstds: forward.exactRstds,
                                                     gamma: gammaValues, dx: out, dgamma: &dgamma, dbeta: &dbeta, threads: threads)
                        }
                    } else {
                        forward.input.scalars.withUnsafeBufferPointer { x in
                            FastKernels.backward(spec: spec, plan: plan, dy: g, x: x, means: forward.exactMeans,
                                                 rstds: forward.exactRstds, gamma: gammaValues, dx: out, dgamma: &dgamma,
                                                 dbeta: &dbeta, threads: threads)
                        }
                    }
                }
                count = dy.count
            }
            let dxTensor = Tensor(uncheckedShape: dy.shape, scalars: dx)
            guard let affineShape = plan.affineShape else { return Gradients(dx: dxTensor, dgamma: nil, dbeta: nil) }
            let batchDivisor = spec.paramGrad == .mean ? Double(plan.batch) : 1
            func parameter(_ values: [Double]) -> Tensor<Scalar> {
                Tensor(uncheckedShape: affineShape, scalars: values.map { Scalar(fromDouble: $0 / batchDivisor) })
            }
            return Gradients(dx: dxTensor, dgamma: parameter(dgamma), dbeta: parameter(dbeta))
        }

        let rstds = forward.rstd.scalars.map(\.asDouble)
        var sumD = [Double](repeating: 0, count: statsCount)
        var sumDX = [Double](repeating: 0, count: statsCount)
        let paramCount = plan.affineShape?.count ?? 0
        var dgamma = [Double](repeating: 0, count: paramCount)
        var dbeta = [Double](repeating: 0, count: paramCount)
        var dx = [Scalar](repeating: 0, count: dy.count)

        dy.scalars.withUnsafeBufferPointer { g in
            forward.normalized.scalars.withUnsafeBufferPointer { xhat in
                for n in 0..<plan.batch {
                    for c in 0..<plan.channels {
                        let start = (n * plan.channels + c) * plan.spatial
                        for s in 0..<plan.spatial {
                            let stat = plan.statIndex(sample: n, channel: c, position: s)
                            let p = affineIsElement ? c * plan.spatial + s : c
                            let dyv = g[start + s].asDouble
                            let h = xhat[start + s].asDouble
                            let dh = dyv * (gammaValues?[p] ?? 1)
                            sumD[stat] += dh
                            sumDX[stat] += dh * h
                            if paramCount > 0 {
                                dgamma[p] += dyv * h
                                dbeta[p] += dyv
                            }
                        }
                    }
                }
                dx.withUnsafeMutableBufferPointer { out in
                    for n in 0..<plan.batch {
                        for c in 0..<plan.channels {
                            let start = (n * plan.channels + c) * plan.spatial
                            for s in 0..<plan.spatial {
                                let stat = plan.statIndex(sample: n, channel: c, position: s)
                                let p = affineIsElement ? c * plan.spatial + s : c
                                let dh = g[start + s].asDouble * (gammaValues?[p] ?? 1)
                                let value: Double
                                if constantStats {
                                    value = rstds[stat] * dh
                                } else {
                                    let meanTerm = centre ? sumD[stat] / m : 0
                                    value = rstds[stat] * (dh - meanTerm - xhat[start + s].asDouble * sumDX[stat] / divisor)
                                }
                                out[start + s] = Scalar(fromDouble: value)
                            }
                        }
                    }
                }
            }
        }

        guard let affineShape = plan.affineShape else {
            return Gradients(dx: Tensor(uncheckedShape: dy.shape, scalars: dx), dgamma: nil, dbeta: nil)
        }
        let batchDivisor = spec.paramGrad == .mean ? Double(plan.batch) : 1
        func parameter(_ values: [Double]) -> Tensor<Scalar> {
            Tensor(uncheckedShape: affineShape, scalars: values.map { Scalar(fromDouble: $0 / batchDivisor) })
        }
        return Gradients(dx: Tensor(uncheckedShape: dy.shape, scalars: dx),
                         dgamma: parameter(dgamma), dbeta: parameter(dbeta))
    }
}
