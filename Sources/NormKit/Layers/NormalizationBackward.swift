extension Normalization {
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
        // Float64 γ for the paths that read it so; the fast kernels convert it themselves.
        var gammaValues: [Double]? { gamma?.scalars.map(\.asDouble) }
        var dx: [Scalar]
        var roundedByKernel: FormatRounding.Counts? = nil
        let dgamma: [Double], dbeta: [Double]
        let storage = forward.storage
        let format = spec.computesExactly ? DType.float64 : spec.accumulate.format(storage: storage)
        let batchDivisor = spec.paramGrad == .mean ? Double(plan.batch) : 1
        let plain = storage == Scalar.dtype && format == .float64  // no rounding but the element type's
        // dγ and dβ already in the element type (and divided), when the kernel could write them so.
        var narrowedParameters: (dgamma: [Scalar], dbeta: [Scalar])? = nil
        if !spec.computesExactly {
            (dx, dgamma, dbeta, roundedByKernel) = emulatedBackward(forward: forward, gammaValues: gammaValues, dy: dy,
                                                                     threads: threads)
        } else if allowFastPath && forward.mode == .eval && spec.kind.hasRunningStatistics {
            (dx, dgamma, dbeta, narrowedParameters) = evalBackward(
                forward: forward, gamma: gamma, dy: dy, threads: threads, narrowingDividedBy: plain ? batchDivisor : nil)
        } else if allowFastPath && forward.mode == .train
            && (FastKernels.applies(spec, plan) || ColumnKernels.applies(spec)) {
            (dx, dgamma, dbeta, roundedByKernel, narrowedParameters) = fastBackward(
                forward: forward, gamma: gamma, dy: dy, threads: threads, narrowingDividedBy: plain ? batchDivisor : nil)
        } else {
            (dx, dgamma, dbeta) = generalBackward(forward: forward, gammaValues: gammaValues, dy: dy)
        }
        let counts = storage.isReduced ? roundedByKernel ?? FormatRounding.round(&dx, to: storage, threads: threads) : nil
        let dxTensor = Tensor(uncheckedShape: dy.shape, scalars: dx)
        var gradients: Gradients<Scalar>
        if let affineShape = plan.affineShape, let narrowedParameters {
            gradients = Gradients(dx: dxTensor, dgamma: Tensor(uncheckedShape: affineShape, scalars: narrowedParameters.dgamma),
                                  dbeta: spec.bias ? Tensor(uncheckedShape: affineShape, scalars: narrowedParameters.dbeta) : nil)
        } else if let affineShape = plan.affineShape {
            func parameter(_ values: [Double]) -> Tensor<Scalar> {
                // Element-wise γ's gradients are a sample's size: converted in parallel lanes (the same roundings).
                plain ? FastKernels.narrowed(values, shape: affineShape, threads: threads, dividedBy: batchDivisor).tensor
                      : Tensor(uncheckedShape: affineShape,
                               scalars: storedParameterGradient(values, dividedBy: batchDivisor, format: format, storage: storage))
            }
            gradients = Gradients(dx: dxTensor, dgamma: parameter(dgamma),
                                  dbeta: forward.spec.bias ? parameter(dbeta) : nil)
        } else {
            gradients = Gradients(dx: dxTensor, dgamma: nil, dbeta: nil)
        }
        if storage.isReduced || !spec.computesExactly {
            let found = counts ?? FormatRounding.Counts(overflowed: 0, nonFinite: countNonFinite(dxTensor))
            if found.nonFinite > 0 { gradients.warnings = lowPrecisionFindings(found, dy: dy, storage: storage) }
        }
        return gradients
    }

    /// dx, and dγ, dβ summed over the batch, on the fast kernels. With `narrowingDividedBy` (the stored format is the
    /// element type), float32 element-wise γ hands back dγ and dβ in float32, divided by it, as `narrowed` where the
    /// kernel's pass could make them so (the Float64 ones then hold nothing to read).
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    static func fastBackward<Scalar: NormScalar>(
        forward: ForwardResult<Scalar>, gamma: Tensor<Scalar>?, dy: Tensor<Scalar>, threads: Int,
        narrowingDividedBy divisor: Double? = nil
    ) -> (dx: [Scalar], dgamma: [Double], dbeta: [Double], rounded: FormatRounding.Counts?,
          narrowed: (dgamma: [Scalar], dbeta: [Scalar])?) {
        let (spec, plan) = forward.spec.onKernels(forward.plan, forward.input.shape)
        let columnPath = ColumnKernels.applies(spec)
        // The row kernels round a float16/bfloat16 dx set by set, in cache; the others leave it to a pass after.
        let rounder = columnPath ? nil : RunRounder(forward.storage, sets: plan.statsShape.count, scalar: Scalar.self)
        // Element-wise γ on the row kernels: they make dγ and dβ (a sample's size) themselves, each run cleared first.
        let paramCount = columnPath || spec.affine != .element ? plan.affineShape?.count ?? 0 : 0
        // The column kernels write every element of dγ and dβ (BatchNorm per element clears each tile's in cache).
        func sums() -> [Double] {
            columnPath ? [Double](unsafeUninitializedCapacity: paramCount) { _, count in count = paramCount }
                       : [Double](repeating: 0, count: paramCount)
        }
        var dgamma = sums(), dbeta = sums()
        // float32 element-wise γ: dγ and dβ in float32 from the kernel's last fold (the column kernels say whether
        // their pass could).
        var narrowing = divisor != nil && Scalar.self == Float.self && spec.affine == .element
        let narrowedCount = narrowing ? plan.affineShape?.count ?? 0 : 0
        func unset() -> [Scalar] { [Scalar](unsafeUninitializedCapacity: narrowedCount) { $1 = narrowedCount } }
        var narrowedGamma = unset(), narrowedBeta = unset()
        func narrowed(_ ng: UnsafeMutableBufferPointer<Scalar>,
                      _ nb: UnsafeMutableBufferPointer<Scalar>) -> FastKernels.NarrowedParameters? {
            narrowing ? narrowedParameters(ng, nb, dividedBy: divisor ?? 1) : nil
        }
        let dx = [Scalar](unsafeUninitializedCapacity: dy.count) { out, count in
            dy.scalars.withUnsafeBufferPointer { g in
            forward.input.scalars.withUnsafeBufferPointer { x in
            narrowedGamma.withUnsafeMutableBufferPointer { ng in
            narrowedBeta.withUnsafeMutableBufferPointer { nb in
                if columnPath {
                    // BatchNorm per element keeps its few statistics; per-position ones are made again per tile, as
                    // are float32 ones (the float32 lanes make x̂ as forward did, from x) — except where a float32
                    // BatchNorm forward kept each column's μ₀, rstd and c, which backward then takes.
                    let given = spec.kind.hasRunningStatistics && Scalar.self != Float.self ? forward.statistics.values : nil
                    narrowing = ColumnKernels.backward(
                        spec: spec, plan: plan, x: x, dy: g, means: given?.exactMeans, rstds: given?.exactRstds,
                        gamma: gamma, dx: out, dgamma: &dgamma, dbeta: &dbeta, threads: threads,
                        narrowed: narrowed(ng, nb), kept: forward.keptColumnConstants)
                } else {
                    FastKernels.backward(spec: spec, plan: plan, dy: g, x: x, means: forward.exactMeans,
                                         rstds: forward.exactRstds, gamma: gamma?.scalars, dx: out, dgamma: &dgamma,
                                         dbeta: &dbeta, threads: threads, rounder: rounder, narrowed: narrowed(ng, nb))
                }
            }}}}
            count = dy.count
        }
        return (dx, dgamma, dbeta, rounder?.finish(), narrowing ? (narrowedGamma, narrowedBeta) : nil)
    }

    /// Where a float32 pass writes dγ and dβ (the arrays at `gamma`, `beta`), divided by `divisor`; nil for arrays
    /// without storage.
    static func narrowedParameters<Scalar>(_ gamma: UnsafeMutableBufferPointer<Scalar>,
                                           _ beta: UnsafeMutableBufferPointer<Scalar>,
                                           dividedBy divisor: Double) -> FastKernels.NarrowedParameters? {
        guard let g = gamma.baseAddress, let b = beta.baseAddress else { return nil }
        return FastKernels.NarrowedParameters(gamma: UnsafeMutableRawPointer(g).assumingMemoryBound(to: Float.self),
                                              beta: UnsafeMutableRawPointer(b).assumingMemoryBound(to: Float.self),
                                              dividedBy: divisor)
    }

    /// BatchNorm in eval mode (`StridedKernels.evalBackward`): the statistics are constants. With
    /// `narrowingDividedBy`, float32 element-wise γ per channel hands back dγ and dβ in float32, divided by it, as
    /// `narrowed` (written by each channel's last fold; the Float64 ones then hold nothing to read).
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    static func evalBackward<Scalar: NormScalar>(
        forward: ForwardResult<Scalar>, gamma: Tensor<Scalar>?, dy: Tensor<Scalar>, threads: Int,
        narrowingDividedBy divisor: Double? = nil
    ) -> (dx: [Scalar], dgamma: [Double], dbeta: [Double], narrowed: (dgamma: [Scalar], dbeta: [Scalar])?) {
        let spec = forward.spec
        let paramCount = forward.plan.affineShape?.count ?? 0
        // Grouped channels: the group's statistics per channel (the plan and statistics were checked by forward).
        let (plan, means, rstds) = (try? Normalization.perChannelStatistics(
            spec: spec, plan: forward.plan, means: forward.exactMeans, rstds: forward.exactRstds))
            ?? (forward.plan, forward.exactMeans, forward.exactRstds)
        // Element-wise γ per channel writes every element of dγ and dβ; the others add into zeros. (On one position
        // it is per channel: the channel rows' loops.)
        let written = spec.reduce == .group && spec.affine == .element && plan.spatial > 1
        func sums() -> [Double] {
            written ? [Double](unsafeUninitializedCapacity: paramCount) { _, count in count = paramCount }
                    : [Double](repeating: 0, count: paramCount)
        }
        var dgamma = sums(), dbeta = sums()
        let narrowing = written && divisor != nil && Scalar.self == Float.self
        let narrowedCount = narrowing ? paramCount : 0
        func unset() -> [Scalar] { [Scalar](unsafeUninitializedCapacity: narrowedCount) { $1 = narrowedCount } }
        var narrowedGamma = unset(), narrowedBeta = unset()
        let dx = [Scalar](unsafeUninitializedCapacity: dy.count) { out, count in
            dy.scalars.withUnsafeBufferPointer { g in
                forward.input.scalars.withUnsafeBufferPointer { x in
                    if written {
                        // Per channel with element-wise γ (ones when none was given): row by row in C.
                        narrowedGamma.withUnsafeMutableBufferPointer { ng in narrowedBeta.withUnsafeMutableBufferPointer { nb in
                            let narrowed = narrowing ? narrowedParameters(ng, nb, dividedBy: divisor ?? 1) : nil
                            StridedKernels.evalElementRowsBackward(
                                plan: plan, dy: g, x: x, means: means, rstds: rstds,
                                gamma: gamma?.scalars ?? [Scalar](repeating: 1, count: paramCount), dx: out,
                                dgamma: &dgamma, dbeta: &dbeta, threads: threads, narrowed: narrowed)
                        }}
                    } else {
                        StridedKernels.evalBackward(spec: spec, plan: plan, dy: g, x: x, means: means,
                                                    rstds: rstds, gamma: gamma?.scalars.map(\.asDouble),
                                                    dx: out, dgamma: &dgamma, dbeta: &dbeta, threads: threads)
                    }
                }
            }
            count = dy.count
        }
        return (dx, dgamma, dbeta, narrowing ? (narrowedGamma, narrowedBeta) : nil)
    }

    /// dx, and dγ, dβ summed over the batch, element by element: every layer, every convention, eval mode.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    static func generalBackward<Scalar: NormScalar>(
        forward: ForwardResult<Scalar>, gammaValues: [Double]?, dy: Tensor<Scalar>
    ) -> (dx: [Scalar], dgamma: [Double], dbeta: [Double]) {
        let plan = forward.plan, spec = forward.spec
        let statsCount = plan.statsShape.count
        let m = Double(plan.setSize)
        let divisor = spec.variance == .unbiased ? m - 1 : m
        let affineIsElement = spec.affine == .element
        let constantStats = spec.kind.hasRunningStatistics && forward.mode == .eval
        let centre = spec.centres
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

        return (dx, dgamma, dbeta)
    }
}

extension Normalization {
    /// dx past the storage format's range, and NaN or ±∞ in dx from a finite dy.
    static func lowPrecisionFindings<Scalar: NormScalar>(_ counts: FormatRounding.Counts, dy: Tensor<Scalar>,
                                                         storage: DType) -> [NormWarning] {
        guard countNonFinite(dy) == 0 else { return [] }
        var findings: [NormWarning] = []
        if counts.overflowed > 0 { findings.append(.storageOverflow(name: "dx", count: counts.overflowed, format: storage)) }
        let before = counts.nonFinite - counts.overflowed
        if before > 0 { findings.append(.nonFiniteResult(name: "dx", count: before, total: dy.count)) }
        return findings
    }

    /// dγ or dβ as stored: divided by the batch (paramgrad=mean), rounded to the accumulation format, then to the
    /// storage format — the same roundings as `DType.round`, in loops over the array (element-wise γ has a sample's
    /// size of them).
    static func storedParameterGradient<Scalar: NormScalar>(_ values: [Double], dividedBy divisor: Double,
                                                            format: DType, storage: DType) -> [Scalar] {
        var divided = [Double](unsafeUninitializedCapacity: values.count) { out, count in
            values.withUnsafeBufferPointer { v in for i in v.indices { out[i] = v[i] / divisor } }
            count = values.count
        }
        format.roundOnBits(&divided)
        storage.roundOnBits(&divided)
        return [Scalar](unsafeUninitializedCapacity: divided.count) { out, count in
            divided.withUnsafeBufferPointer { v in for i in v.indices { out[i] = Scalar(fromDouble: v[i]) } }
            count = divided.count
        }
    }
}
