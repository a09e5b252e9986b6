import CVectorMath

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
        threads: Int = 1,
        storage: DType? = nil,
        summarizing: Bool = false
    ) throws(NormError) -> ForwardResult<Scalar> {
        try computeForward(spec: spec, input: input, gamma: gamma, beta: beta, mode: mode, running: running,
                           threads: threads, allowFastPath: true, storage: storage, summarizing: summarizing)
    }

    /// `allowFastPath: false` runs the general per-element path, the reference the fast kernels are tested against.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    static func computeForward<Scalar: NormScalar>(
        spec: LayerSpec, input: Tensor<Scalar>, gamma: Tensor<Scalar>?, beta: Tensor<Scalar>?, mode: Mode,
        running: (mean: Tensor<Scalar>, variance: Tensor<Scalar>)?, threads: Int, allowFastPath: Bool,
        storage: DType? = nil, summarizing: Bool = false
    ) throws(NormError) -> ForwardResult<Scalar> {
        let storage = storage ?? Scalar.dtype
        guard storage == Scalar.dtype || (Scalar.dtype == .float32 && storage.isReduced) else {
            throw NormError.state("internal: \(storage) tensors are held in Float, not \(Scalar.dtype)")
        }
        let spec = spec.resolved(storage: storage)
        try spec.validate()
        let plan = try NormPlan(spec: spec, inputShape: input.shape)
        if beta != nil && !spec.bias {
            throw NormError.mismatch("this layer has no β (PyTorch's RMSNorm has a weight only)")
        }
        try checkAffine(gamma, name: "gamma", plan: plan, spec: spec)
        try checkAffine(beta, name: "beta", plan: plan, spec: spec)
        let usesRunning = spec.kind.hasRunningStatistics && mode == .eval
        let m = plan.setSize

        if !usesRunning {
            if spec.kind.hasRunningStatistics && m < 2 {  // the running variance needs m − 1 > 0
                throw NormError.mismatch(spec.groupsSpanBatch
                    ? "BatchNorm in training needs sets of at least 2 elements; these have \(m) (input \(input.shape), \(plan.groups) groups)"
                    : spec.reduce == .channels
                    ? "BatchNorm over the batch axis needs a batch of at least 2 in training; got N = \(plan.batch)"
                    : "BatchNorm needs more than 1 value per channel when training; got input \(input.shape)")
            }
            if spec.variance == .unbiased && m < 2 {
                throw NormError.mismatch("the unbiased variance divides by m − 1 = 0: each statistics set has a single element (input \(input.shape))")
            }
        }

        var result: ForwardResult<Scalar>
        if !spec.computesExactly {
            result = try emulatedForward(spec: spec, plan: plan, input: input, gamma: gamma, beta: beta,
                                         running: running, usesRunning: usesRunning, storage: storage,
                                         threads: threads)
        } else if allowFastPath && usesRunning {
            result = try evalForward(spec: spec, plan: plan, input: input, gamma: gamma, beta: beta, running: running,
                                     threads: threads, summarizing: summarizing)
        } else if allowFastPath && !usesRunning
                    && (FastKernels.applies(spec, plan) || ColumnKernels.applies(spec)) {
            result = try fastForward(spec: spec, plan: plan, input: input, gamma: gamma, beta: beta, threads: threads,
                                     storage: storage, summarizing: summarizing)
        } else {
            result = try generalForward(spec: spec, plan: plan, input: input, gamma: gamma, beta: beta,
                                        running: usesRunning ? running : nil, usesRunning: usesRunning)
        }
        // Element-wise γ and β are a sample's size: a vectorised look first, a count only when something is off.
        func nonFinite(_ t: Tensor<Scalar>?) -> Int { t.map { hasNonFinite($0, threads: threads) ? countNonFinite($0) : 0 } ?? 0 }
        let badParameters = nonFinite(gamma) + nonFinite(beta)
        if badParameters > 0 { result.warnings.append(.nonFiniteParameters(count: badParameters)) }
        store(&result, storage: storage, parametersFinite: badParameters == 0, threads: threads)
        return result
    }

    /// 1 / √(v + eps) for each variance, vectorised (`normlab_reciprocal_square_roots`; the same bits as Swift's).
    static func reciprocalSquareRoots(_ variances: [Double], eps: Double) -> [Double] {
        [Double](unsafeUninitializedCapacity: variances.count) { out, initialized in
            variances.withUnsafeBufferPointer { v in
                if let source = v.baseAddress, let target = out.baseAddress {
                    normlab_reciprocal_square_roots(source, eps, target, v.count)
                }
            }
            initialized = variances.count
        }
    }

    /// Whether any element is NaN or infinite (`normlab_has_non_finite_f32`: on the bits, vectorised; the count
    /// below branches per element); over a million elements in 8 parts on up to `threads` threads.
    static func hasNonFinite<Scalar: NormScalar>(_ input: Tensor<Scalar>, threads: Int = 1) -> Bool {
        let parts = input.count >= 1 << 20 ? 8 : 1
        guard parts > 1, threads > 1 else { return input.scalars.withUnsafeBufferPointer { hasNonFinite($0) } }
        let found = UnsafeMutablePointer<Bool>.allocate(capacity: parts)
        defer { found.deallocate() }
        nonisolated(unsafe) let out = found
        let count = input.count
        input.scalars.withUnsafeBufferPointer { x in
            nonisolated(unsafe) let base = x.baseAddress!
            KernelThreads.run(chunks: parts, threads: threads) { part in
                let lower = count * part / parts, upper = count * (part + 1) / parts
                (out + part).initialize(to: hasNonFinite(UnsafeBufferPointer(start: base + lower, count: upper - lower)))
            }
        }
        return (0..<parts).contains { found[$0] }
    }

    static func hasNonFinite<Scalar: NormScalar>(_ x: UnsafeBufferPointer<Scalar>) -> Bool {
        // Scalar is Float or Double, and the memory is bound to that type.
        guard let base = UnsafeRawPointer(x.baseAddress) else { return false }
        if Scalar.self == Float.self {
            return normlab_has_non_finite_f32(base.assumingMemoryBound(to: Float.self), x.count) != 0
        }
        return normlab_has_non_finite_f64(base.assumingMemoryBound(to: Double.self), x.count) != 0
    }

    /// How many elements are NaN or ±∞: the vectorised look first (the count branches per element, and callers
    /// such as a float32 emulated backward's dx check every pass: it took 18 % of one).
    static func countNonFinite<Scalar: NormScalar>(_ input: Tensor<Scalar>) -> Int {
        input.scalars.withUnsafeBufferPointer { x in hasNonFinite(x) ? x.reduce(0) { $0 + ($1.isFinite ? 0 : 1) } : 0 }
    }

    /// What a pass warns about: sets of one element (x̂ = 0), zero variances with eps = 0 (x̂ = NaN), non-finite input.
    static func warnings(spec: LayerSpec, setSize m: Int, usesRunning: Bool, variances: [Double], nonFinite: () -> Int) -> [NormWarning] {
        warnings(spec: spec, setSize: m, usesRunning: usesRunning, zeroVariances: { variances.filter { $0 == 0 }.count },
                 nonFinite: nonFinite)
    }

    static func warnings(spec: LayerSpec, setSize m: Int, usesRunning: Bool, zeroVariances: () -> Int,
                         nonFinite: () -> Int) -> [NormWarning] {
        var warnings: [NormWarning] = []
        if m == 1 && spec.centres && !usesRunning {
            warnings.append(.singleElementSets(layer: spec.kind.displayName))
        }
        if spec.eps == 0 {
            let zeroSets = zeroVariances()
            if zeroSets > 0 { warnings.append(.zeroVarianceWithZeroEps(sets: zeroSets)) }
        }
        let count = nonFinite()
        if count > 0 { warnings.append(.nonFiniteInput(count: count)) }
        return warnings
    }

    /// The fast kernels: sets of whole rows (`FastKernels`), or sets that are columns (`ColumnKernels`, below).
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    static func fastForward<Scalar: NormScalar>(
        spec: LayerSpec, plan: NormPlan, input: Tensor<Scalar>, gamma: Tensor<Scalar>?, beta: Tensor<Scalar>?, threads: Int,
        storage: DType? = nil, summarizing: Bool = false
    ) throws(NormError) -> ForwardResult<Scalar> {
        // y's summary set by set: worth it where sets are long enough that one more call per set is nothing.
        let summarize = summarizing && plan.setSize >= SummaryParts.shortestSet
        let (kernelSpec, kernelPlan) = spec.onKernels(plan, input.shape)
        if ColumnKernels.applies(kernelSpec) {
            var result = columnForward(spec: kernelSpec, plan: kernelPlan, input: input, gamma: gamma, beta: beta,
                                       threads: threads, summarizing: summarizing)
            // The layer as it was declared (`onKernels` changes only which kernels make the same sets and shapes).
            (result.spec, result.plan) = (spec, plan)
            return result
        }
        let m = plan.setSize
        var stats: FastKernels.Statistics? = nil
        let rounder = RunRounder(storage, sets: plan.statsShape.count, scalar: Scalar.self)
        let parts = SummaryParts(count: summarize ? plan.statsShape.count : 0)
        defer { parts.deallocate() }
        // The kernels write every element: no need to zero the buffers first.
        let output = [Scalar](unsafeUninitializedCapacity: input.count) { y, yCount in
            input.scalars.withUnsafeBufferPointer { x in
                stats = FastKernels.forward(spec: kernelSpec, plan: kernelPlan, x: x, gamma: gamma?.scalars, beta: beta?.scalars,
                                            y: y, threads: threads, rounder: rounder, summary: parts.pointer)
            }
            yCount = input.count
        }
        guard let stats else { throw NormError.state("internal: the fast kernel produced no statistics") }
        func narrowed(_ values: [Double]) -> (tensor: Tensor<Scalar>, finite: Bool) {
            FastKernels.narrowed(values, shape: plan.statsShape, threads: threads)
        }
        let mean = spec.centres ? narrowed(stats.means) : nil, variance = narrowed(stats.variances)
        // Counting costs a pass over x: only when a statistic shows that something is not finite.
        let statsFinite = (mean?.finite ?? true) && variance.finite
        let warnings = Self.warnings(spec: spec, setSize: m, usesRunning: false, variances: stats.variances,
                                     nonFinite: { statsFinite ? 0 : countNonFinite(input) })
        var result = ForwardResult(
            spec: spec, plan: plan, mode: .train, input: input,
            output: Tensor(uncheckedShape: input.shape, scalars: output),
            mean: mean?.tensor, variance: variance.tensor, rstd: narrowed(stats.rstds).tensor,
            unbiasedVariance: spec.kind.hasRunningStatistics
                ? narrowed(stats.sumSquares.map { $0 / Double(m - 1) }).tensor : nil,
            warnings: warnings, exactMeans: stats.means, exactRstds: stats.rstds, storedNormalized: nil)
        result.roundedByKernel = rounder?.finish()
        result.outputMoments = parts.total
        return result
    }

    /// Sets that are columns (`ColumnKernels`): per-position statistics, made when first read; BatchNorm per
    /// element, whose few statistics (one per element of a sample) the kernel writes.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    static func columnForward<Scalar: NormScalar>(
        spec: LayerSpec, plan: NormPlan, input: Tensor<Scalar>, gamma: Tensor<Scalar>?, beta: Tensor<Scalar>?, threads: Int,
        summarizing: Bool = false
    ) -> ForwardResult<Scalar> {
        let eager = spec.kind.hasRunningStatistics
        // float32 keeps no Float64 statistics (made when read): its backward reads none (it takes the kept μ₀, rstd
        // and c, or makes them again).
        let exactToo = eager && Scalar.self != Float.self
        var findings = ColumnKernels.ForwardFindings()
        // BatchNorm's statistics in the element type, written by the pass tile by tile (every element).
        let statsCount = eager ? plan.statsShape.count : 0
        func uninitialized() -> [Scalar] { [Scalar](unsafeUninitializedCapacity: statsCount) { _, count in count = statsCount } }
        var narrowedMean = uninitialized(), narrowedVariance = uninitialized(), narrowedRstd = uninitialized()
        var narrowedUnbiased = uninitialized()
        // μ₀ and c for backward, where the kernels write them with the statistics (rstd is the statistics' own).
        let keeps = eager && !exactToo && ColumnKernels.keepsConstants(spec, plan, scalar: Scalar.self)
            && ColumnKernels.NarrowedStatistics<Scalar>.narrowsInKernel(unbiasedDivisor: Double(plan.setSize - 1))
        let keptCount = keeps ? statsCount : 0
        var keptFirstMean = [Scalar](unsafeUninitializedCapacity: keptCount) { $1 = keptCount }
        var keptShift = [Scalar](unsafeUninitializedCapacity: keptCount) { $1 = keptCount }
        let output = [Scalar](unsafeUninitializedCapacity: input.count) { y, yCount in
            input.scalars.withUnsafeBufferPointer { x in
                narrowedMean.withUnsafeMutableBufferPointer { mean in
                narrowedVariance.withUnsafeMutableBufferPointer { variance in
                narrowedRstd.withUnsafeMutableBufferPointer { rstd in
                narrowedUnbiased.withUnsafeMutableBufferPointer { unbiased in
                keptFirstMean.withUnsafeMutableBufferPointer { firstMean in
                keptShift.withUnsafeMutableBufferPointer { shift in
                    let narrowing = eager ? ColumnKernels.NarrowedStatistics(
                        mean: mean.baseAddress!, variance: variance.baseAddress!, rstd: rstd.baseAddress!,
                        unbiased: unbiased.baseAddress!, unbiasedDivisor: Double(plan.setSize - 1),
                        firstMean: keeps ? firstMean.baseAddress : nil, shift: keeps ? shift.baseAddress : nil) : nil
                    findings = ColumnKernels.forward(spec: spec, plan: plan, x: x, gamma: gamma, beta: beta, xhat: nil,
                                                     y: y.baseAddress, statistics: exactToo, summarizing: summarizing,
                                                     narrowing: narrowing, threads: threads)
                }}}}}}
            }
            yCount = input.count
        }
        func narrowed(_ values: [Scalar]) -> Tensor<Scalar> { Tensor(uncheckedShape: plan.statsShape, scalars: values) }
        // Counting costs a pass over x: only when a statistic shows that something is not finite.
        let warnings = Self.warnings(spec: spec, setSize: plan.setSize, usesRunning: false,
                                     zeroVariances: { findings.zeroVariances },
                                     nonFinite: { findings.finite ? 0 : countNonFinite(input) })
        let statistics: PassStatistics<Scalar>
        var unbiased: Tensor<Scalar>? = nil
        @Sendable func madeAgain() -> FastKernels.Statistics {
            input.scalars.withUnsafeBufferPointer { x in
                ColumnKernels.forward(spec: spec, plan: plan, x: x, gamma: nil, beta: nil, xhat: nil, y: nil,
                                      statistics: true, threads: threads).statistics!
            }
        }
        if let stats = findings.statistics {
            statistics = PassStatistics(.init(mean: spec.centres ? narrowed(narrowedMean) : nil,
                                              variance: narrowed(narrowedVariance), rstd: narrowed(narrowedRstd),
                                              exactMeans: stats.means, exactRstds: stats.rstds))
            unbiased = narrowed(narrowedUnbiased)
        } else if eager {
            statistics = PassStatistics(.init(mean: spec.centres ? narrowed(narrowedMean) : nil,
                                              variance: narrowed(narrowedVariance), rstd: narrowed(narrowedRstd))) {
                columnStatistics(madeAgain(), spec: spec, plan: plan, threads: threads)
            }
            unbiased = narrowed(narrowedUnbiased)
        } else {
            statistics = PassStatistics {
                let stats = madeAgain()
                return columnStatistics(stats, spec: spec, plan: plan, threads: threads)
            }
        }
        var result = ForwardResult(spec: spec, plan: plan, mode: .train, input: input,
                                   output: Tensor(uncheckedShape: input.shape, scalars: output), statistics: statistics,
                                   unbiasedVariance: unbiased, warnings: warnings, storedNormalized: nil)
        result.outputMoments = findings.summary
        if keeps {
            result.keptColumnConstants = .init(firstMean: keptFirstMean, rstd: narrowedRstd, shift: keptShift)
        }
        return result
    }

    static func columnStatistics<Scalar: NormScalar>(_ stats: FastKernels.Statistics, spec: LayerSpec, plan: NormPlan,
                                                     threads: Int) -> PassStatistics<Scalar>.Values {
        func narrowed(_ values: [Double]) -> Tensor<Scalar> {
            FastKernels.narrowed(values, shape: plan.statsShape, threads: threads).tensor
        }
        return .init(mean: spec.centres ? narrowed(stats.means) : nil, variance: narrowed(stats.variances),
                     rstd: narrowed(stats.rstds), exactMeans: stats.means, exactRstds: stats.rstds)
    }

    /// The general per-element path: every layer, every convention, BatchNorm's eval mode.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    static func generalForward<Scalar: NormScalar>(
        spec: LayerSpec, plan: NormPlan, input: Tensor<Scalar>, gamma: Tensor<Scalar>?, beta: Tensor<Scalar>?,
        running: (mean: Tensor<Scalar>, variance: Tensor<Scalar>)?, usesRunning: Bool
    ) throws(NormError) -> ForwardResult<Scalar> {
        let m = plan.setSize
        let statsCount = plan.statsShape.count
        let nonFinite = countNonFinite(input)
        var means = [Double](repeating: 0, count: statsCount)
        var variances = [Double](repeating: 0, count: statsCount)
        var unbiased: [Double]? = nil

        if usesRunning {
            (means, variances) = try runningStatistics(running, plan: plan)
        } else {
            let (mu, sumSquares) = Self.statistics(of: input, plan: plan, centre: spec.centres)
            means = mu
            let divisor = Double(spec.variance == .unbiased ? m - 1 : m)
            variances = sumSquares.map { $0 / divisor }
            if spec.kind.hasRunningStatistics {
                unbiased = sumSquares.map { $0 / Double(m - 1) }
            }
        }
        let rstds = reciprocalSquareRoots(variances, eps: spec.eps)

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

        let warnings = Self.warnings(spec: spec, setSize: m, usesRunning: usesRunning, variances: variances,
                                     nonFinite: { nonFinite })

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

    static func checkAffine<Scalar: NormScalar>(
        _ parameter: Tensor<Scalar>?, name: String, plan: NormPlan, spec: LayerSpec
    ) throws(NormError) {
        guard let parameter else { return }
        guard let expected = plan.affineShape else {
            throw NormError.mismatch("this layer has affine=none, so it takes no \(name)")
        }
        guard parameter.shape == expected else {
            let what = spec.normalizedShape != nil ? "the normalised shape"
                : spec.affine == .channel ? "one value per channel" : "one value per element of a sample (C, *spatial)"
            throw NormError.mismatch("\(name) has shape \(parameter.shape) but affine=\(spec.affine) needs \(what): \(expected)")
        }
    }
}
